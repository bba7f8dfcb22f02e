"""Shared-namespace routing (SPEC §3 domain types, §4 directory; issue 5):
for every recipient the directory decides local mailbox, custom
recipient (rewritten and forwarded) or unknown, without ever looping.

Every test starts a real splitmxd on loopback with the directory below
and real SMTP sinks standing for the local system, the other system
("notes") and the outside world (the outbound smarthost).  RCPT replies
and `splitmxctl lookup` are checked directly; deliveries are checked at
the sinks, byte for byte where it matters.
"""
import email
import json
import os
import re
import smtplib
import subprocess
import time

import pytest

from conftest import SPLITMXD, DnsServer, Sink, wait_for

DIRECTORY = """\
# address               kind    target
alice@example.com       local
bob@example.com         custom  bob@notes.example.com
carol@example.com       custom
dave@example.com        custom  eve@example.com
eve@example.com         custom  frank@example.com
frank@example.com       local
@sales.example.com      local
loopa@example.com       custom  loopb+x@example.com
loopb@example.com       custom  loopa@example.com
amy@auth.example        local
ann@auth.example        custom  ann@outside.example
art@auth.example        custom  art@notes.example.com
abe@auth.example        custom  alice@example.com
al@auth.example         custom
bea@bounce.example      local
fay@fwd.example         local
fred@from.example       local
gus@name.example        local
"""

# {L}, {N}, {N2}, {O} are sink ports; {port}, {tmp} conftest's.
BODY = """
trusted 127.0.0.1/32
table people file "{tmp}/directory"

domain "example.com" {{
	type shared
	directory people
	local to "[127.0.0.1]:%(L)d" tls none
	forward to "[127.0.0.1]:%(N)d" tls none
	unknown reject
}}
domain ".sales.example.com" {{
	type shared
	directory people
	local to "[127.0.0.1]:%(L)d" tls none
	forward to "[127.0.0.1]:%(N)d" tls none
}}
domain "bounce.example" {{
	type shared
	directory people
	local to "[127.0.0.1]:%(L)d" tls none
	forward to "[127.0.0.1]:%(N)d" tls none
	unknown bounce
}}
domain "fwd.example" {{
	type shared
	directory people
	local to "[127.0.0.1]:%(L)d" tls none
	forward to "[127.0.0.2]:%(N2)d" tls none
	unknown forward
}}
domain "from.example" {{
	type shared
	directory people
	local to "[127.0.0.1]:%(L)d" tls none
	forward to "[127.0.0.2]:%(N2)d" tls none
	forward from 127.0.0.3
	unknown forward
}}
domain "auth.example" {{
	type authoritative
	directory people
	local to "[127.0.0.1]:%(L)d" tls none
	unknown reject
}}
domain "authb.example" {{
	type authoritative
	directory people
	local to "[127.0.0.1]:%(L)d" tls none
	unknown bounce
}}
domain "notes.example.com" {{
	type relay
	forward to "[127.0.0.1]:%(N)d" tls none
}}
outbound via "[127.0.0.1]:%(O)d" tls none
"""


class World:
    """The gateway and the three systems around it."""

    def __init__(self, smx, directory=DIRECTORY, extra=""):
        self.local = Sink()
        self.notes = Sink()
        self.notes2 = Sink(host="127.0.0.2")
        self.outside = Sink()
        self.sinks = [self.local, self.notes, self.notes2, self.outside]
        self.dirpath = os.path.join(smx.tmp, "directory")
        with open(self.dirpath, "w") as f:
            f.write(directory)
        body = BODY % {"L": self.local.port, "N": self.notes.port,
                       "N2": self.notes2.port, "O": self.outside.port}
        self.d = smx.start(body + extra)

    def stop(self):
        for s in self.sinks:
            s.stop()


@pytest.fixture
def world(smx):
    w = World(smx)
    yield w
    w.stop()


def smtp(d, source=None):
    """An SMTP session from 127.0.0.1 (trusted) or from source."""
    s = smtplib.SMTP("127.0.0.1", d.port, timeout=20,
                     source_address=(source, 0) if source else None)
    s.ehlo("client.example")
    return s


def rcpt(d, addr, source=None, sender="sender@outside.example"):
    """(code, text) of RCPT TO:<addr> in a new transaction."""
    s = smtp(d, source)
    try:
        s.mail(sender)
        code, text = s.rcpt(addr)
        return code, text.decode()
    finally:
        s.quit()


def lookup(d, addr):
    r = d.ctl("lookup", addr, json_out=True)
    out = json.loads(r.stdout)
    out["exit"] = r.returncode
    return out


def send(d, rcpts, body, sender="sender@outside.example", source=None):
    s = smtp(d, source)
    try:
        refused = s.sendmail(sender, rcpts, body)
        assert not refused, refused
    finally:
        s.quit()


def message(tag, extra=b""):
    return (b"From: sender@outside.example\r\n"
            b"To: someone@example.com\r\n"
            b"Subject: routing " + tag.encode() + b"\r\n"
            b"Message-ID: <" + tag.encode() + b"@outside.example>\r\n"
            b"\r\n"
            b"Body of " + tag.encode() + b".\r\n"
            b".a line that starts with a dot\r\n" + extra)


def strip_received(data):
    """The message without our Received header (the first header)."""
    m = re.match(rb"Received: [^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*", data)
    assert m, data[:300]
    return m.group(0), data[m.end():]


def received_for(sink, rcpt, timeout=20):
    """The messages a sink got that name rcpt, once there is one."""
    def got():
        with sink.lock:
            return [m for m in sink.messages if rcpt in m["rcpts"]]
    return wait_for(got, timeout, what="a message for %s" % rcpt)


def all_rcpts(sink):
    with sink.lock:
        return sorted(r for m in sink.messages for r in m["rcpts"])


# --- configuration checks: splitmxd -n and reload ---------------------

def check(smx, directory, name="dir"):
    path = os.path.join(smx.tmp, name)
    with open(path, "w") as f:
        f.write(directory)
    conf = os.path.join(smx.tmp, name + ".conf")
    text, _ = smx.config('table people file "%s"\n'
                         'domain "example.com" {{\n\ttype shared\n'
                         '\tdirectory people\n\tlocal to "[127.0.0.1]:1"\n'
                         '\tforward to "[127.0.0.1]:2"\n}}\n'
                         'domain "auth.example" {{\n\ttype authoritative\n'
                         '\tdirectory people\n\tlocal to "[127.0.0.1]:1"\n'
                         '}}\n' % path)
    with open(conf, "w") as f:
        f.write(text)
    return path, subprocess.run([SPLITMXD, "-n", "-f", conf],
                                capture_output=True, text=True)


def test_cycle_refused_by_n(smx):
    path, r = check(smx, "a@example.com custom b@example.com\n"
                         "b@example.com custom c@example.com\n"
                         "c@example.com custom a@example.com\n")
    assert r.returncode == 1
    assert "configuration OK" not in r.stdout
    assert ("%s:1: custom recipient chain loops: a@example.com -> "
            "b@example.com -> c@example.com -> a@example.com" % path
            in r.stderr), r.stderr


def test_chain_longer_than_8_steps_refused_by_n(smx):
    lines = ["u%d@example.com custom u%d@example.com" % (i, i + 1)
             for i in range(9)] + ["u9@example.com local"]
    path, r = check(smx, "\n".join(lines) + "\n")
    assert r.returncode == 1
    assert "is longer than 8 steps" in r.stderr, r.stderr
    # Eight steps are fine.
    path, r = check(smx, "\n".join(lines[1:]) + "\n", "dir8")
    assert r.returncode == 0, r.stderr


def test_n_warns_about_targets_that_would_come_back(smx):
    path, r = check(smx, "ok@example.com local\n"
                         "x@example.com custom ghost@example.com\n"
                         "y@example.com custom ok@example.com\n"
                         "z@example.com custom z@notes.example.com\n"
                         "w@example.com custom\n"
                         "al@auth.example custom\n")
    assert r.returncode == 0, r.stderr
    assert "configuration OK" in r.stdout
    warnings = sorted(ln for ln in r.stderr.splitlines() if "warning" in ln)
    assert len(warnings) == 2, r.stderr
    assert warnings[0].startswith("%s:2: warning: custom recipient "
                                  "x@example.com: target ghost@example.com "
                                  "is in the shared domain example.com"
                                  % path), warnings
    assert warnings[1].startswith("%s:6: warning: custom recipient "
                                  "al@auth.example has no target" % path)


def test_cycle_refused_by_reload_old_directory_stays(world):
    d = world.d
    assert rcpt(d, "alice@example.com")[0] == 250
    with open(world.dirpath, "a") as f:
        f.write("new@example.com local\n"
                "p@example.com custom q@example.com\n"
                "q@example.com custom p@example.com\n")
    r = d.ctl("reload")
    assert r.returncode == 1
    assert "custom recipient chain loops: p@example.com -> " \
           "q@example.com -> p@example.com" in r.stderr, r.stderr
    # The directory in force goes on answering, the new one is not used.
    assert rcpt(d, "alice@example.com")[0] == 250
    assert rcpt(d, "new@example.com")[0] == 550
    # Fixed: the reload takes, the new address is known at once.
    with open(world.dirpath, "w") as f:
        f.write(DIRECTORY + "new@example.com local\n")
    r = d.ctl("reload")
    assert r.returncode == 0, r.stderr
    assert rcpt(d, "new@example.com")[0] == 250


def test_reload_logs_the_warnings(world):
    with open(world.dirpath, "a") as f:
        f.write("x@example.com custom ghost@example.com\n")
    assert world.d.ctl("reload").returncode == 0
    world.d.wait_log(r"lookup: .*directory:\d+: warning: custom recipient "
                     r"x@example.com: target ghost@example.com")


# --- the domain-type table, RCPT and splitmxctl lookup ------------------

def test_shared_local_mailbox(world):
    assert rcpt(world.d, "alice@example.com") == (250, "2.1.5 Ok")
    r = lookup(world.d, "alice@example.com")
    assert r["exit"] == 0 and r["routable"]
    assert r["decision"] == "local"
    assert r["route"] == "local"
    assert r["destination"] == "[127.0.0.1]:%d" % world.local.port
    assert r["steps"][0]["entry"] == "alice@example.com"
    assert r["steps"][0]["source"] == world.dirpath + ":2"


def test_shared_custom_is_rewritten_to_the_forward_host(world):
    assert rcpt(world.d, "bob@example.com")[0] == 250
    r = lookup(world.d, "bob@example.com")
    assert r["exit"] == 0
    assert r["decision"] == "custom -> bob@notes.example.com"
    assert r["route"] == "custom"
    assert r["rewritten"] == "bob@notes.example.com"
    assert r["destination"] == "[127.0.0.1]:%d" % world.notes.port
    assert [s["address"] for s in r["steps"]] == [
        "bob@example.com", "bob@notes.example.com"]
    assert r["steps"][0]["kind"] == "custom"
    assert r["steps"][0]["target"] == "bob@notes.example.com"


def test_lookup_text_explains_each_step(world):
    r = world.d.ctl("lookup", "dave@example.com")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "decision     custom -> frank@example.com (local mailbox)" in out
    assert re.search(r"step 1 +dave@example.com: domain example.com "
                     r"\(shared, table people\): entry dave@example.com at "
                     r"\S+directory:5: custom -> eve@example.com", out), out
    assert "step 2       eve@example.com" in out
    assert "step 3       frank@example.com" in out
    assert "rewritten    frank@example.com" in out
    assert "destination  [127.0.0.1]:%d" % world.local.port in out
    assert "policy       shared domain example.com" in out
    assert "reply        250 2.1.5 Ok" in out


def test_lookup_of_an_unroutable_address_exits_1(world):
    r = world.d.ctl("lookup", "nobody@example.com")
    assert r.returncode == 1
    assert "decision     unknown -> reject" in r.stdout + r.stderr
    assert "550 5.1.1" in r.stdout + r.stderr
    assert lookup(world.d, "nobody@example.com")["routable"] is False
    # Not ours, and splitmxctl is no trusted client.
    r = lookup(world.d, "x@outside.example")
    assert r["exit"] == 1 and r["decision"] == "not ours -> relaying denied"


def test_custom_without_target_keeps_its_address(world):
    assert rcpt(world.d, "carol@example.com")[0] == 250
    r = lookup(world.d, "carol@example.com")
    assert r["decision"] == "custom (keeps its address)"
    assert r["rewritten"] == "carol@example.com"
    assert r["destination"] == "[127.0.0.1]:%d" % world.notes.port


def test_detail_and_case(world):
    assert rcpt(world.d, "Alice+News@EXAMPLE.com")[0] == 250
    r = lookup(world.d, "Alice+News@EXAMPLE.com")
    assert r["route"] == "local"
    assert r["steps"][0]["entry"] == "alice@example.com"
    # A local address goes on as the client spelled it.
    assert r["rewritten"] == "Alice+News@EXAMPLE.com"
    r = lookup(world.d, "BOB+x@Example.Com")
    assert r["rewritten"] == "bob@notes.example.com"
    # The exact address wins over the one without the detail.
    assert lookup(world.d, "nobody+x@example.com")["exit"] == 1


def test_whole_domain_entry(world):
    assert rcpt(world.d, "anyone@sales.example.com")[0] == 250
    r = lookup(world.d, "Anyone@Sales.Example.COM")
    assert r["steps"][0]["entry"] == "@sales.example.com"
    assert r["steps"][0]["domain"] == ".sales.example.com"
    # The entry is for that domain, not for the ones below it.
    assert rcpt(world.d, "x@deep.sales.example.com")[0] == 550


def test_chain_is_followed(world):
    r = lookup(world.d, "dave@example.com")
    assert [s["address"] for s in r["steps"]] == [
        "dave@example.com", "eve@example.com", "frank@example.com"]
    assert r["route"] == "local"
    assert r["rewritten"] == "frank@example.com"


def test_cycle_at_run_time_is_550_546(world):
    # Through the +detail: no cycle for the file check, one at run time.
    assert rcpt(world.d, "loopa@example.com") == (
        550, "5.4.6 Routing loop in the directory")
    r = lookup(world.d, "loopa@example.com")
    assert r["exit"] == 1
    assert r["decision"] == "custom chain loops"
    assert [s["kind"] for s in r["steps"]] == ["custom", "custom", "loop"]


def test_unknown_reject_is_550_511(world):
    assert rcpt(world.d, "nobody@example.com") == (
        550, "5.1.1 Recipient address unknown")


def test_unknown_bounce_is_accepted(world):
    assert rcpt(world.d, "nobody@bounce.example")[0] == 250
    r = lookup(world.d, "nobody@bounce.example")
    assert r["route"] == "bounce" and r["decision"] == "unknown -> bounce"
    assert r["exit"] == 1       # accepted, but it goes nowhere


def test_unknown_forward_goes_to_the_forward_host(world):
    assert rcpt(world.d, "nobody@fwd.example")[0] == 250
    r = lookup(world.d, "nobody@fwd.example")
    assert r["route"] == "forward"
    assert r["destination"] == "[127.0.0.2]:%d" % world.notes2.port


def test_unknown_from_the_forward_host_is_a_loop(world):
    # 127.0.0.2 is fwd.example's forward host ("[127.0.0.2]:port").
    assert rcpt(world.d, "nobody@fwd.example", source="127.0.0.2") == (
        550, "5.4.6 Routing loop: unknown recipient from the forward host")
    # Only unknown recipients: its mail for a mailbox here is welcome.
    assert rcpt(world.d, "fay@fwd.example", source="127.0.0.2")[0] == 250
    world.d.wait_log(r"rcpt=<nobody@fwd.example> verdict=reject "
                     r"reply=\"550 5.4.6")


def test_unknown_from_a_forward_from_network_is_a_loop(world):
    # "forward from 127.0.0.3": where the forward host also sends from.
    assert rcpt(world.d, "nobody@from.example", source="127.0.0.3")[0] == 550
    assert rcpt(world.d, "nobody@from.example", source="127.0.0.2")[0] == 550
    assert rcpt(world.d, "nobody@from.example")[0] == 250


def test_forward_host_name_is_resolved_for_the_loop_check(smx):
    dns = DnsServer()
    notes = Sink()
    try:
        dns.add("notes.test. MX 10 mx.notes.test.",
                "mx.notes.test. A 127.0.0.4",
                "notes.test. A 127.0.0.5")
        with open(os.path.join(smx.tmp, "directory"), "w") as f:
            f.write(DIRECTORY)
        d = smx.start('resolver "%s"\n'
                      'table people file "{tmp}/directory"\n'
                      'domain "name.example" {{\n\ttype shared\n'
                      '\tdirectory people\n'
                      '\tlocal to "[127.0.0.1]:%d" tls none\n'
                      '\tforward to "notes.test" tls none\n'
                      '\tunknown forward\n}}\n' % (dns.addr, notes.port))
        wait_for(lambda: dns.asked("mx.notes.test", "A") and
                 dns.asked("notes.test", "A"), 10,
                 what="the forward host resolved")
        # Its MX host and its own address are the forward host.
        for src in ("127.0.0.4", "127.0.0.5"):
            assert wait_for(lambda: rcpt(d, "nobody@name.example",
                                         source=src)[0] == 550, 10,
                            what="the loop check from %s" % src)
        assert rcpt(d, "gus@name.example", source="127.0.0.4")[0] == 250
        assert rcpt(d, "nobody@name.example", source="127.0.0.6")[0] == 250
    finally:
        notes.stop()
        dns.stop()


def test_authoritative_rows(world):
    d = world.d
    r = lookup(d, "amy@auth.example")
    assert r["route"] == "local"
    assert r["destination"] == "[127.0.0.1]:%d" % world.local.port
    # custom: routed by the target's domain.
    r = lookup(d, "ann@auth.example")        # not ours: outbound
    assert r["rewritten"] == "ann@outside.example"
    assert r["destination"] == "[127.0.0.1]:%d" % world.outside.port
    r = lookup(d, "art@auth.example")        # a relay domain of ours
    assert r["destination"] == "[127.0.0.1]:%d" % world.notes.port
    r = lookup(d, "abe@auth.example")        # a local mailbox of ours
    assert r["route"] == "local" and r["rewritten"] == "alice@example.com"
    # Without a target and without a forward host: nowhere to go.
    assert rcpt(d, "al@auth.example")[0] == 550
    assert rcpt(d, "nobody@auth.example") == (
        550, "5.1.1 Recipient address unknown")
    assert rcpt(d, "nobody@authb.example")[0] == 250


def test_relay_domain_sends_everything_to_the_forward_host(world):
    assert rcpt(world.d, "whoever@notes.example.com")[0] == 250
    r = lookup(world.d, "whoever@notes.example.com")
    assert r["decision"] == "relay -> forward"
    assert r["destination"] == "[127.0.0.1]:%d" % world.notes.port


def test_no_open_relay(world):
    assert rcpt(world.d, "x@outside.example", source="127.0.0.2") == (
        550, "5.7.1 Relaying denied")
    assert rcpt(world.d, "x@outside.example")[0] == 250    # trusted



@pytest.mark.parametrize("hostname,want", [
    ("mx.test.example", "postmaster@example.com"),      # the first domain
    ("mx1.sales.example.com", "postmaster@sales.example.com"),
])
def test_bare_postmaster_is_our_domains_postmaster(smx, hostname, want):
    """RFC 5321 4.5.1: RCPT TO:<postmaster> needs no domain, from anyone;
    it is the postmaster of the domain the host name is in, else of the
    first domain, and goes on with that full address."""
    w = World(smx, directory=DIRECTORY + "postmaster@example.com local\n",
              extra='hostname "%s"\n' % hostname)
    try:
        assert rcpt(w.d, "postmaster", source="127.0.0.2") == (
            250, "2.1.5 Ok")
        send(w.d, ["Postmaster"], message("postmaster"))
        got = received_for(w.local, want)
        assert got[0]["rcpts"] == [want]
        assert strip_received(got[0]["data"])[1] == message("postmaster")
    finally:
        w.stop()

def test_counters(world):
    d = world.d
    s = smtp(d)
    s.mail("sender@outside.example")
    for a in ("alice@example.com", "frank@example.com", "bob@example.com",
              "whoever@notes.example.com", "nobody@fwd.example",
              "nobody@example.com", "loopa@example.com"):
        s.rcpt(a)
    s.quit()
    want = {"recipients.local": 2, "recipients.custom": 1,
            "recipients.forwarded": 2, "recipients.rejected": 2}
    wait_for(lambda: all(d.status_json()[k] == v for k, v in want.items()),
             5, what="counters %r" % want)
    # splitmxctl lookup counts nothing.
    lookup(d, "alice@example.com")
    time.sleep(0.5)
    assert d.status_json()["recipients.local"] == 2


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_lookup_is_open_to_the_socket_group(smx):
    with open(os.path.join(smx.tmp, "directory"), "w") as f:
        f.write(DIRECTORY)
    d = smx.start('control socket "{tmp}/control.sock" group "nogroup"\n'
                  'table people file "{tmp}/directory"\n'
                  'domain "example.com" {{\n\ttype shared\n'
                  '\tdirectory people\n\tlocal to "[127.0.0.1]:1"\n'
                  '\tforward to "[127.0.0.1]:2"\n}}\n')
    r = d.ctl("lookup", "bob@example.com", user="nobody")
    assert r.returncode == 0, r.stderr
    assert "custom -> bob@notes.example.com" in r.stdout
    assert d.ctl("reload", user="nobody").returncode == 1


# --- deliveries: the relay and the scheduler at work ------------------

def test_custom_message_arrives_rewritten_and_byte_identical(world):
    body = message("bytes", b"x" * 990 + b"\r\n")
    send(world.d, ["bob@example.com"], body)
    got = received_for(world.notes, "bob@notes.example.com")
    assert len(got) == 1 and got[0]["rcpts"] == ["bob@notes.example.com"]
    received, rest = strip_received(got[0]["data"])
    assert rest == body
    assert b"by mx.test.example" in received
    assert got[0]["from"] == "sender@outside.example"


def test_local_message_arrives_at_the_local_system(world):
    send(world.d, ["Alice+News@EXAMPLE.com"], message("local"))
    got = received_for(world.local, "Alice+News@EXAMPLE.com")
    assert strip_received(got[0]["data"])[1] == message("local")
    assert not world.notes.messages


def test_chain_and_no_target_deliveries(world):
    send(world.d, ["dave@example.com"], message("chain"))
    send(world.d, ["carol@example.com"], message("notarget"))
    received_for(world.local, "frank@example.com")
    received_for(world.notes, "carol@example.com")


def test_unknown_forward_delivery(world):
    send(world.d, ["nobody@fwd.example"], message("fwd"))
    got = received_for(world.notes2, "nobody@fwd.example")
    assert strip_received(got[0]["data"])[1] == message("fwd")


def test_relay_domain_delivery(world):
    send(world.d, ["whoever@notes.example.com"], message("relay"))
    received_for(world.notes, "whoever@notes.example.com")


def test_authoritative_custom_goes_by_the_targets_domain(world):
    send(world.d, ["ann@auth.example", "abe@auth.example"], message("auth"))
    received_for(world.outside, "ann@outside.example")
    received_for(world.local, "alice@example.com")


def test_mixed_recipients_are_split_per_destination(world):
    rcpts = ["alice@example.com", "frank@example.com", "bob@example.com",
             "whoever@notes.example.com", "someone@outside.example"]
    body = message("mixed")
    send(world.d, rcpts, body)
    received_for(world.local, "frank@example.com")
    received_for(world.notes, "bob@notes.example.com")
    received_for(world.notes, "whoever@notes.example.com")
    received_for(world.outside, "someone@outside.example")
    time.sleep(1)       # anything more would be a duplicate
    assert all_rcpts(world.local) == ["alice@example.com",
                                      "frank@example.com"]
    assert all_rcpts(world.notes) == ["bob@notes.example.com",
                                      "whoever@notes.example.com"]
    assert all_rcpts(world.outside) == ["someone@outside.example"]
    # One delivery per destination (and domain): local has one message
    # with both of its recipients.
    assert len(world.local.messages) == 1
    assert len(world.notes.messages) == 1
    # The same bytes everywhere, our Received header included.
    datas = {m["data"] for s in (world.local, world.notes, world.outside)
             for m in s.messages}
    assert len(datas) == 1
    assert strip_received(datas.pop())[1] == body


def test_unknown_bounce_sends_a_report_to_the_sender(world):
    send(world.d, ["nobody@bounce.example", "bea@bounce.example"],
         message("bounce"))
    received_for(world.local, "bea@bounce.example")
    dsn = received_for(world.outside, "sender@outside.example")[0]
    assert dsn["from"] in ("", "<>")
    msg = email.message_from_bytes(dsn["data"])
    assert msg.get_content_type() == "multipart/report"
    status = [p for p in msg.walk()
              if p.get_content_type() == "message/delivery-status"]
    assert status, dsn["data"][:2000]
    text = dsn["data"].decode("utf-8", "replace")
    assert "nobody@bounce.example" in text
    assert "Status: 5.1.1" in text


class Refuser:
    """The other system, refusing every recipient."""

    async def handle_RCPT(self, server, session, envelope, address,
                          rcpt_options):
        return "550 5.1.1 no such user here"


def test_dsn_of_a_custom_recipient_names_the_original_address(smx):
    outside = Sink()
    notes = Sink(handler=Refuser())
    try:
        with open(os.path.join(smx.tmp, "directory"), "w") as f:
            f.write(DIRECTORY)
        d = smx.start('trusted 127.0.0.1/32\n'
                      'table people file "{tmp}/directory"\n'
                      'domain "example.com" {{\n\ttype shared\n'
                      '\tdirectory people\n\tlocal to "[127.0.0.1]:1"\n'
                      '\tforward to "[127.0.0.1]:%d" tls none\n}}\n'
                      'outbound via "[127.0.0.1]:%d" tls none\n'
                      % (notes.port, outside.port))
        send(d, ["bob@example.com"], message("dsn"))
        dsn = received_for(outside, "sender@outside.example")[0]
        text = dsn["data"].decode("utf-8", "replace")
        assert "Final-Recipient: rfc822; bob@notes.example.com" in text
        assert "Original-Recipient: rfc822; bob@example.com" in text, text
    finally:
        notes.stop()
        outside.stop()
