"""The seccomp lists on paths the rest of the suite does not take
(issue 18): one running daemon reloaded into a new resolver, new keys,
other listeners and another metrics port, and back; and a spool that
fills up (ENOSPC on a small tmpfs: 452 4.3.1, nothing acknowledged is
lost, delivery resumes when there is room again).  A system call
outside a process' list ends that process and so the daemon: every
test checks that the children it started are the ones still running.
(The LDAP paths are in test_ldap.py; syslog's are the operations
tests'.)
"""
import os
import smtplib
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import OBJ, DnsServer, Sink, free_port, port_open, wait_for
from test_privsep import child_by_name, proc_status
from test_smtp import Client

pytestmark = pytest.mark.skipif("asan" in OBJ,
                                reason="sanitizer builds load no filter")


def sandboxed(d, kids):
    """The same five children, each under its filter, none killed."""
    assert d.running()
    assert child_by_name(d) == kids
    for name, pid in kids.items():
        assert proc_status(pid)["Seccomp"].strip() == "2", name
    assert "forbidden system call" not in d.log()


def make_cert(directory, cn):
    crt, key = os.path.join(directory, cn + ".crt"), \
        os.path.join(directory, cn + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", key, "-out", crt, "-days", "2",
                    "-subj", "/CN=" + cn], check=True, capture_output=True)
    os.chmod(key, 0o600)
    return crt, key


def peer_cert(port):
    """The DER certificate the listener on port shows after STARTTLS."""
    c = Client(port)
    c.ehlo()
    c.starttls()
    der = c.sock.getpeercert(binary_form=True)
    c.ehlo()
    c.cmd("QUIT")
    c.close()
    return der


def der(crt):
    with open(crt) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def metrics_up(port):
    try:
        body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                      timeout=5).read()
        return b"splitmx_" in body
    except (urllib.error.URLError, ConnectionError, OSError):
        return False


def deliver(port, rcpt, tls=False):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.ehlo("client.test")
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            s.starttls(context=ctx)
            s.ehlo("client.test")
        assert not s.sendmail("a@client.test", [rcpt],
                              b"Subject: reload\r\n\r\nx\r\n")


def test_reloads_of_resolver_pki_listeners_and_metrics_hold(smx, certs,
                                                            tmp_path):
    sink = Sink()
    dns1, dns2 = DnsServer(), DnsServer()
    try:
        dns1.add("one.test. MX 10 mx.one.test.",
                 "mx.one.test. A 127.0.0.1")
        dns2.add("two.test. MX 10 mx.two.test.",
                 "mx.two.test. A 127.0.0.1")
        os.chmod(tmp_path, 0o755)
        crt2, key2 = make_cert(str(tmp_path), "mx2.test.example")
        p1, p2 = free_port(), free_port()
        m1, m2 = free_port(), free_port()
        domains = ""
        for dom in ("one.test", "two.test"):
            domains += ('domain "%s" {\n\ttype relay\n\tforward to '
                        '"%s:%d" tls none\n}\n' % (dom, dom, sink.port))

        def body(resolver, crt, key, listens, metrics):
            text = ""
            if resolver:
                text += 'resolver "%s"\n' % resolver.addr
            text += 'pki mx1 cert "%s" key "%s"\n' % (crt, key)
            text += "".join("listen on 127.0.0.1 port %d %s\n" % lp
                            for lp in listens)
            if metrics:
                text += "metrics listen on 127.0.0.1 port %d\n" % metrics
            return (text + domains).replace("{", "{{").replace("}", "}}")

        d = smx.start(body(dns1, *certs, [(p1, "tls pki mx1")], m1), port=p1)
        kids = child_by_name(d)
        assert peer_cert(p1) == der(certs[0])
        deliver(p1, "a@one.test", tls=True)
        sink.wait(1)
        assert metrics_up(m1)
        assert dns1.asked("one.test", "MX")

        def reload(text):
            conf, _ = smx.config(text, port=p1)
            with open(d.conf_path, "w") as f:
                f.write(conf)
            r = d.ctl("reload")
            assert r.returncode == 0, r.stdout + r.stderr

        # Another resolver, another key, a second listener, another
        # metrics port: all at once.
        reload(body(dns2, crt2, key2, [(p1, "tls pki mx1"),
                                        (p2, "tls-require pki mx1")], m2))
        wait_for(lambda: port_open(p2), 10, what="the new listener")
        assert peer_cert(p1) == der(crt2)
        assert peer_cert(p2) == der(crt2)
        c = Client(p2)
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@client.test>")[0] == 530
        c.close()
        deliver(p2, "b@two.test", tls=True)
        sink.wait(2)
        assert dns2.asked("two.test", "MX")
        wait_for(lambda: metrics_up(m2), 10, what="metrics on the new port")
        assert not metrics_up(m1)
        sandboxed(d, kids)

        # The first listener and the metrics go; the resolver is the
        # system's again (no query is made: nothing is sent).
        reload(body(None, crt2, key2, [(p2, "tls-require pki mx1")], None))
        wait_for(lambda: not port_open(p1), 10, what="the old listener gone")
        wait_for(lambda: not metrics_up(m2), 10, what="metrics gone")
        assert peer_cert(p2) == der(crt2)
        sandboxed(d, kids)

        # And back: the first key, the first resolver, both ports.
        reload(body(dns1, *certs, [(p1, "tls pki mx1")], m1))
        wait_for(lambda: port_open(p1), 10, what="the listener again")
        wait_for(lambda: metrics_up(m1), 10, what="metrics again")
        assert peer_cert(p1) == der(certs[0])
        deliver(p1, "c@one.test", tls=True)
        sink.wait(3)
        sandboxed(d, kids)
    finally:
        sink.stop()
        dns1.stop()
        dns2.stop()


# --- a full spool -----------------------------------------------------------

class Gate:
    """An SMTP server that defers every recipient until opened."""

    def __init__(self):
        from aiosmtpd.controller import Controller
        self.open = False
        self.messages = []
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1",
                                     port=self.port)
        self.controller.start()

    async def handle_RCPT(self, server, session, envelope, address,
                          rcpt_options):
        if not self.open:
            return "451 4.3.2 come back later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope.original_content or envelope.content)
        return "250 2.0.0 OK"

    def stop(self):
        self.controller.stop()


def mount_tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o",
                        "size=%s,mode=0755" % size, "tmpfs", path],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs for the spool (%s): the full "
                    "spool test needs root and mount(2)" %
                    r.stderr.strip())


def send_one(port, i, body):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.ehlo("client.test")
        s.mail("a@client.test")
        assert s.rcpt("n%d@example.com" % i)[0] == 250
        return s.data(body)


def test_full_spool_is_452_and_loses_nothing(smx):
    """The spool fills up in both places a message is written: its data
    (the smtp process) and its envelope (the queue process, at commit).
    Each time the client gets 452 4.3.1 (issue 18: the commit said 451
    4.3.0), the daemon lives on, and once there is room what was
    acknowledged is delivered."""
    if os.geteuid() != 0:
        pytest.skip("the full spool test mounts a tmpfs: it needs root")
    gate = Gate()
    spool = os.path.join(smx.tmp, "queue")
    mount_tmpfs(spool, "2m")
    try:
        d = smx.start('domain "example.com" {{\n\ttype relay\n\tforward '
                      'to "[127.0.0.1]:%d" tls none\n}}\n'
                      'retry 1s to 2s expire 1h\n' % gate.port)
        kids = child_by_name(d)
        # No delivery attempt writes to the spool meanwhile.
        assert d.ctl("pause", "relay").returncode == 0
        # Three pages left.  A message of 3.6K takes two: its data one,
        # its envelope, appended at commit, the next.  So the first
        # fits, the second's envelope does not (the commit fails and
        # gives its page back), and the data of one of 8K does not
        # either (the smtp process' write fails).
        st = os.statvfs(spool)
        page = st.f_frsize
        filler = os.path.join(spool, "filler")
        with open(filler, "wb") as f:
            f.write(b"\0" * ((st.f_bavail - 3) * page))
        assert os.statvfs(spool).f_bavail == 3
        body = b"Subject: fill\r\n\r\n" + (b"y" * 98 + b"\r\n") * 36
        big = body + (b"z" * 98 + b"\r\n") * 50
        replies = [send_one(d.port, i, b) for i, b in
                   enumerate((body, body, big, body))]
        assert [c for c, _ in replies] == [250, 452, 452, 452], replies
        for code, text in replies[1:]:
            assert text.startswith(b"4.3.1 "), text
        log = d.log()
        assert "event=commit-failed" in log and "reason=no-space" in log
        acked = [0]
        # The daemon lives on, answers, and takes a small message in a
        # fresh page once there is one.
        sandboxed(d, kids)
        c = Client(d.port)
        c.ehlo()
        assert c.cmd("NOOP")[0] == 250
        c.close()
        # Room again: what was acknowledged is delivered, new mail too.
        os.unlink(filler)
        code, text = send_one(d.port, 9, body)
        assert code == 250, text
        acked.append(9)
        gate.open = True
        assert d.ctl("resume", "relay").returncode == 0
        d.ctl("schedule", "all")
        wait_for(lambda: len(gate.messages) >= len(acked), 60,
                 interval=0.2, what="every acknowledged message delivered")
        time.sleep(1)
        got = sorted(int(m.split(b"for <n")[1].split(b"@")[0])
                     for m in gate.messages)
        assert got == acked
        wait_for(lambda: not d.ctl_json("show", "queue")["queue"], 20,
                 what="an empty queue")
        sandboxed(d, kids)
        d.stop()
    finally:
        gate.stop()
        for dd in smx.daemons:
            if dd.running():
                dd.kill9()
        subprocess.run(["umount", "-l", spool], capture_output=True)
