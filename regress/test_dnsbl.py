"""The connection policy (SPEC §10, issue 13 item 3): DNS block and allow
lists asked at connect through the loopback DNS server, their weights and
threshold, the 550 for every recipient but postmaster, the cache, the
timeout, trusted clients, IPv6 clients, `limit connection-rate`, and
`splitmxctl check client`.

Every test has its own DNS server and its own zone names, and no test
changes a record once the daemon may have asked for it: a resolver that
caches answers answers the same.
"""
import json
import socket
import time

import pytest

from conftest import wait_for

DNSBL_TIMEOUT = 5       # seconds, DNSBL_TIMEOUT in smtpd/splitmx.h
BANNER_DELAY = 0.5
# Clients the harness never uses (Daemon.start's port check connects
# from 127.0.0.1), so that every query and counter is the test's own.
CLIENT = "127.0.0.3"
OTHER = "127.0.0.4"


def rev4(ip):
    return ".".join(reversed(ip.split(".")))


def rev6(ip):
    packed = socket.inet_pton(socket.AF_INET6, ip)
    nibbles = "".join("%02x" % b for b in packed)
    return ".".join(reversed(nibbles))


class Client:
    """Raw SMTP from a chosen source address (see connect())."""

    def _line(self):
        while b"\r\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise EOFError("closed; unparsed: %r" % self.buf)
            self.buf += d
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def reply(self):
        lines = []
        while True:
            line = self._line()
            lines.append(line)
            if line[3:4] != "-":
                break
        return int(lines[0][:3]), "\n".join(ln[4:] for ln in lines)

    def cmd(self, line):
        self.sock.sendall((line + "\r\n").encode())
        return self.reply()

    def ok(self, line, code=250):
        c, text = self.cmd(line)
        assert c == code, "%s -> %d %s" % (line, c, text)
        return text

    def mail(self):
        self.ok("EHLO client.example")
        self.ok("MAIL FROM:<sender@client.example>")

    def closed(self):
        """True once the server has closed the connection."""
        try:
            return self.sock.recv(1) == b""
        except OSError:
            return True

    def close(self):
        try:
            self.cmd("QUIT")
        except (OSError, EOFError):
            pass
        self.sock.close()


def connect(port, source="127.0.0.1"):
    """A client from source to the listener of its family; the banner
    read, and how long it took."""
    c = Client()
    fam = socket.AF_INET6 if ":" in source else socket.AF_INET
    c.sock = socket.socket(fam, socket.SOCK_STREAM)
    c.sock.settimeout(DNSBL_TIMEOUT * 4)
    c.sock.bind((source, 0))
    t0 = time.monotonic()
    c.sock.connect(("::1" if fam == socket.AF_INET6 else "127.0.0.1",
                    port))
    c.buf = b""
    c.banner = c.reply()
    c.banner_after = time.monotonic() - t0
    return c


def start(smx, dns, policy, extra=""):
    """splitmxd asking the test's DNS server, with the policy lines."""
    body = 'resolver "%s"\n%s\n%s\n' % (dns.addr, policy, extra)
    return smx.start(body)


def stat(d, name):
    return d.status_json().get(name, 0)


def wait_stat(d, name, value):
    return wait_for(lambda: stat(d, name) == value, 10,
                    what="%s == %d" % (name, value))


def test_dnsbl_listed_client_gets_550_for_every_rcpt_but_postmaster(
        smx, dns):
    dns.add("%s.bl.listed.example.org. A 127.0.0.2" % rev4(CLIENT))
    d = start(smx, dns, 'dnsbl "bl.listed.example.org"')
    c = connect(d.port, CLIENT)
    assert c.banner[0] == 220
    c.mail()
    code, text = c.cmd("RCPT TO:<user@example.com>")
    assert code == 550
    assert text.startswith("5.7.1 ")
    assert "bl.listed.example.org" in text
    assert "[127.0.0.3]" in text
    # Every recipient, whatever the route would have said.
    assert c.cmd("RCPT TO:<nobody@elsewhere.example>")[0] == 550
    # The postmaster can still be reached, bare or with our domain.
    c.ok("RCPT TO:<postmaster>")
    c.ok("RCPT TO:<Postmaster@example.com>")
    c.close()
    d.wait_log(r"event=dnsbl client=127\.0\.0\.3 score=1 threshold=1 "
               r'listed="bl\.listed\.example\.org" verdict=refused')
    d.wait_log(r"event=rcpt-rejected .*to=<user@example.com> "
               r"reason=dnsbl")
    wait_stat(d, "recipients.dnsbl_rejected", 2)
    assert stat(d, "connections.dnsbl_refused") == 1
    assert stat(d, "recipients.rejected") == 2


def test_dnsbl_clean_client_is_accepted_without_extra_wait(smx, dns):
    d = start(smx, dns, 'dnsbl "bl.clean.example.org"')
    c = connect(d.port, CLIENT)
    assert c.banner[0] == 220
    # The list answered within the banner delay: no wait beyond it
    # (a loose bound: this is not a benchmark).
    assert c.banner_after < BANNER_DELAY + 2
    c.mail()
    c.ok("RCPT TO:<user@example.com>")
    c.close()
    assert dns.asked("%s.bl.clean.example.org" % rev4(CLIENT), "A")
    d.wait_log(r"event=dnsbl client=127\.0\.0\.3 score=0 threshold=1 "
               r'listed="" verdict=accepted')


def test_dnsbl_weights_add_up_to_the_threshold(smx, dns):
    # CLIENT is on both lists (1 + 1 = 2), OTHER on one only.
    dns.add("%s.one.weights.example.org. A 127.0.0.2" % rev4(CLIENT),
            "%s.two.weights.example.org. A 127.0.0.4" % rev4(CLIENT),
            "%s.one.weights.example.org. A 127.0.0.2" % rev4(OTHER))
    d = start(smx, dns, 'dnsbl "one.weights.example.org"\n'
              'dnsbl "two.weights.example.org" weight 1\n'
              "dnsbl threshold 2")
    c = connect(d.port, OTHER)
    c.mail()
    c.ok("RCPT TO:<user@example.com>")
    c.close()
    c = connect(d.port, CLIENT)
    c.mail()
    code, text = c.cmd("RCPT TO:<user@example.com>")
    assert code == 550
    assert "one.weights.example.org, two.weights.example.org" in text
    c.close()
    d.wait_log(r"client=127\.0\.0\.4 score=1 threshold=2 .*verdict=accepted")
    d.wait_log(r"client=127\.0\.0\.3 score=2 threshold=2 .*verdict=refused")


def test_dnswl_cancels_a_block_list(smx, dns):
    q = rev4(CLIENT)
    dns.add("%s.bl.allow.example.org. A 127.0.0.2" % q,
            "%s.wl.allow.example.org. A 127.0.15.1" % q)
    d = start(smx, dns, 'dnsbl "bl.allow.example.org" weight 2\n'
              'dnswl "wl.allow.example.org" weight 2\n')
    c = connect(d.port, CLIENT)
    c.mail()
    c.ok("RCPT TO:<user@example.com>")
    c.close()
    d.wait_log(r"client=127\.0\.0\.3 score=0 threshold=1 "
               r'listed="bl\.allow\.example\.org" verdict=accepted')


def test_dnsbl_operator_error_code_does_not_list(smx, dns):
    # 127.255.255.254: "you query through a public resolver".
    dns.add("%s.bl.refusing.example.org. A 127.255.255.254" %
            rev4(CLIENT))
    d = start(smx, dns, 'dnsbl "bl.refusing.example.org"')
    c = connect(d.port, CLIENT)
    c.mail()
    c.ok("RCPT TO:<user@example.com>")
    c.close()
    d.wait_log(r"dnsbl bl\.refusing\.example\.org answers 127\.255\.255"
               r"\.254: the list operator refuses our queries")
    wait_stat(d, "dnsbl.errors", 1)


def test_dnsbl_trusted_client_is_never_checked(smx, dns):
    dns.add("%s.bl.trusted.example.org. A 127.0.0.2" % rev4(CLIENT))
    d = start(smx, dns, 'dnsbl "bl.trusted.example.org"',
              "trusted 127.0.0.3")
    c = connect(d.port, CLIENT)
    assert c.banner[0] == 220
    c.mail()
    c.ok("RCPT TO:<user@example.com>")
    c.close()
    # OTHER is not trusted: its query shows the server was reachable.
    c = connect(d.port, OTHER)
    c.close()
    wait_for(lambda: dns.asked("%s.bl.trusted.example.org" %
                               rev4(OTHER)), 10, what="query")
    assert dns.asked("%s.bl.trusted.example.org" % rev4(CLIENT)) == []
    assert "event=dnsbl client=127.0.0.3 " not in d.log()
    r = d.ctl("check", "client", CLIENT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "trusted      yes: never checked" in r.stdout
    assert dns.asked("%s.bl.trusted.example.org" % rev4(CLIENT)) == []


def test_dnsbl_list_that_times_out_counts_as_not_listed(smx, dns):
    q = rev4(CLIENT)
    dns.drop("%s.slow.timeout.example.org" % q)
    dns.add("%s.bl.timeout.example.org. A 127.0.0.2" % q)
    # Listed on the list that answers, weight 1 of a threshold of 2: the
    # silent list would have made it 2.
    d = start(smx, dns, 'dnsbl "bl.timeout.example.org"\n'
              'dnsbl "slow.timeout.example.org"\n'
              "dnsbl threshold 2")
    c = connect(d.port, CLIENT)
    assert c.banner[0] == 220
    # The banner waited for the lists, but no longer than the bound.
    assert c.banner_after < BANNER_DELAY + DNSBL_TIMEOUT + 2.5, \
        c.banner_after
    c.mail()
    c.ok("RCPT TO:<user@example.com>")
    c.close()
    d.wait_log(r"event=dnsbl-timeout client=127\.0\.0\.3 "
               r"zone=slow\.timeout\.example\.org")
    d.wait_log(r"client=127\.0\.0\.3 score=1 threshold=2 .*verdict=accepted")
    assert dns.asked("%s.slow.timeout.example.org" % q, "A")


def test_dnsbl_listed_with_a_silent_list_beside_it(smx, dns):
    q = rev4(CLIENT)
    dns.drop("%s.slow.beside.example.org" % q)
    dns.add("%s.bl.beside.example.org. A 127.0.0.2" % q)
    d = start(smx, dns, 'dnsbl "bl.beside.example.org"\n'
              'dnsbl "slow.beside.example.org"')
    c = connect(d.port, CLIENT)
    assert c.banner_after < BANNER_DELAY + DNSBL_TIMEOUT + 2.5
    c.mail()
    code, text = c.cmd("RCPT TO:<user@example.com>")
    assert code == 550 and "bl.beside.example.org" in text
    assert "slow.beside" not in text
    c.close()


def test_dnsbl_answers_are_cached_per_address(smx, dns):
    q = rev4(CLIENT)
    dns.add("%s.bl.cache.example.org. 3600 A 127.0.0.2" % q)
    d = start(smx, dns, 'dnsbl "bl.cache.example.org"')
    for _ in range(2):
        c = connect(d.port, CLIENT)
        c.mail()
        assert c.cmd("RCPT TO:<user@example.com>")[0] == 550
        c.close()
    # A clean address is cached too (NXDOMAIN).
    for _ in range(2):
        c = connect(d.port, OTHER)
        c.mail()
        c.ok("RCPT TO:<user@example.com>")
        c.close()
    assert len(dns.asked("%s.bl.cache.example.org" % q)) == 1
    assert len(dns.asked("%s.bl.cache.example.org" %
                         rev4(OTHER))) == 1
    wait_stat(d, "dnsbl.cached", 2)
    # One query per name: the ones above, and the harness' own check.
    names = [n for n, _ in dns.queries if n.endswith(".bl.cache.example.org")]
    assert len(names) == len(set(names))
    assert stat(d, "dnsbl.queries") == len(names)
    # splitmxctl says where the answer came from and how long it stays.
    r = d.ctl("check", "client", CLIENT, json_out=True)
    assert r.returncode == 1, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    lst = doc["lists"][0]
    assert lst["cached"] is True
    assert 3000 < lst["ttl"] <= 3600
    assert len(dns.asked("%s.bl.cache.example.org" % q)) == 1


def test_dnsbl_ipv6_client_is_asked_by_nibbles(smx, dns):
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    name = "%s.bl.six.example.org" % rev6("::1")
    assert name.startswith("1.0.0.0.") and name.count(".") == 35
    dns.add("%s. A 127.0.0.2" % name)
    port = smx.config()[1]
    d = smx.start('resolver "%s"\ndnsbl "bl.six.example.org"\n'
                  "listen on 127.0.0.1 port {port}\n"
                  "listen on ::1 port {port}\n" % dns.addr, port=port)
    c = connect(d.port, "::1")
    c.mail()
    code, text = c.cmd("RCPT TO:<user@example.com>")
    assert code == 550 and "[::1]" in text
    c.close()
    assert dns.asked(name, "A")


def test_connection_rate_refuses_with_421_and_spares_other_clients(smx):
    # (127.0.0.1 has made one connection already: the start's check
    # that the port is open.)
    d = smx.start("limit connection-rate 3")
    for _ in range(3):
        c = connect(d.port, "127.0.0.2")
        assert c.banner[0] == 220
        c.close()
    c = connect(d.port, "127.0.0.2")
    assert c.banner[0] == 421
    assert c.banner[1].startswith("4.7.0 ")
    assert wait_for(c.closed, 5, what="the door")
    c.sock.close()
    # Another address has its own count.
    c = connect(d.port, "127.0.0.1")
    assert c.banner[0] == 220
    c.close()
    d.wait_log(r"event=refused client=127\.0\.0\.2 limit=connection-rate")
    wait_stat(d, "connections.rate_limited", 1)


def test_connection_rate_spares_trusted_clients(smx):
    d = smx.start("limit connection-rate 1\ntrusted 127.0.0.1")
    for _ in range(3):
        c = connect(d.port)
        assert c.banner[0] == 220
        c.close()
    c = connect(d.port, "127.0.0.2")
    assert c.banner[0] == 220
    c.close()
    c = connect(d.port, "127.0.0.2")
    assert c.banner[0] == 421


def test_check_client_explains_the_score_list_by_list(smx, dns):
    q = rev4(CLIENT)
    dns.add("%s.bl.check.example.org. 600 A 127.0.0.2" % q,
            "%s.bl.check.example.org. 600 A 127.0.0.10" % q,
            "%s.err.check.example.org. A 127.255.255.252" % q)
    d = start(smx, dns, 'dnsbl "bl.check.example.org" weight 2\n'
              'dnsbl "err.check.example.org"\n'
              'dnswl "wl.check.example.org"\n'
              "dnsbl threshold 2")
    r = d.ctl("check", "client", CLIENT)
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout
    assert "client       127.0.0.3\n" in out
    assert "trusted      no\n" in out
    assert ("list         dnsbl bl.check.example.org weight 2: listed "
            "(127.0.0.2 127.0.0.10): +2\n") in out
    assert "query %s.bl.check.example.org, asked now, cached 600 s" % q \
        in out
    assert ("list         dnsbl err.check.example.org weight 1: list error "
            "code (127.255.255.252), counts as not listed: +0") in out
    assert "list         dnswl wl.check.example.org weight 1: not listed" \
        in out
    assert "score        2 (threshold 2)\n" in out
    assert ("verdict      refused: 550 5.7.1 Service unavailable; client "
            "[127.0.0.3] blocked using bl.check.example.org\n") in out

    r = d.ctl("check", "client", CLIENT, json_out=True)
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert doc["client"] == CLIENT and doc["trusted"] is False
    assert doc["score"] == 2 and doc["threshold"] == 2
    assert doc["refused"] is True
    assert doc["reply"].startswith("550 5.7.1 ")
    bl, err, wl = doc["lists"]
    assert bl == {"zone": "bl.check.example.org", "type": "dnsbl",
                  "weight": 2, "query": "%s.bl.check.example.org" % q,
                  "answer": "listed",
                  "addresses": ["127.0.0.2", "127.0.0.10"], "counted": 2,
                  "cached": True, "ttl": bl["ttl"]}
    assert 0 < bl["ttl"] <= 600
    assert err["answer"] == "list error code" and err["counted"] == 0
    assert wl["type"] == "dnswl" and wl["answer"] == "not listed"
    assert wl["cached"] is True

    r = d.ctl("check", "client", OTHER, json_out=True)
    assert r.returncode == 0, r.stdout
    doc = json.loads(r.stdout)
    assert doc["refused"] is False and doc["reply"] == ""
    assert doc["score"] == 0

    r = d.ctl("check", "client", "not-an-address")
    assert r.returncode == 1
    assert "is not an IPv4 or IPv6 address" in r.stdout
    r = d.ctl("check", "client")
    assert r.returncode == 2


def test_check_client_without_lists(smx):
    d = smx.start("")
    r = d.ctl("check", "client", "::1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "lists        none configured\n" in r.stdout
    assert "verdict      accepted\n" in r.stdout


def test_dnsbl_reload_adds_a_list(smx, dns):
    dns.add("%s.bl.reload.example.org. A 127.0.0.2" % rev4(CLIENT))
    d = start(smx, dns, "")
    c = connect(d.port, CLIENT)
    c.mail()
    c.ok("RCPT TO:<user@example.com>")
    c.close()
    with open(d.conf_path, "a") as f:
        f.write('dnsbl "bl.reload.example.org" weight 2\n'
                "dnsbl threshold 2\n"
                "limit connection-rate 100\n")
    r = d.ctl("reload")
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'added: dnsbl "bl.reload.example.org" weight 2' in r.stdout
    assert "changed: dnsbl threshold 2" in r.stdout
    assert "changed: limit connection-rate 100" in r.stdout
    c = connect(d.port, CLIENT)
    c.mail()
    assert c.cmd("RCPT TO:<user@example.com>")[0] == 550
    c.close()


def test_dnsbl_early_talker_is_refused_while_a_list_is_slow(smx, dns):
    dns.drop("%s.slow.early.example.org" % rev4(CLIENT))
    d = start(smx, dns, 'dnsbl "slow.early.example.org"')
    s = socket.socket()
    s.settimeout(DNSBL_TIMEOUT * 4)
    s.bind((CLIENT, 0))
    s.connect(("127.0.0.1", d.port))
    # Past the banner delay, while the banner waits for the list.
    time.sleep(BANNER_DELAY + 1)
    s.sendall(b"EHLO early.example\r\n")
    t0 = time.monotonic()
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    assert data.startswith(b"554 5.5.0 "), data
    assert time.monotonic() - t0 < DNSBL_TIMEOUT - 1
    d.wait_log(r"event=early-talker client=127\.0\.0\.3")
