"""Milters (SPEC §9, issue 13): a real splitmxd talking to real milters
from Debian packages on loopback -- OpenDKIM signing, rspamd scanning,
a python3-milter milter for every reply and modification -- and to
milters that are down, hang or talk garbage, for each on-error.  What
the client hears, what arrives at the sink (byte for byte), what the
queue holds and what the counters say are checked.
"""
import os
import re
import smtplib
import socket
import ssl
import tempfile
import threading
import time
import urllib.request

import pytest

from conftest import Sink, free_port, wait_for
from milters import (GTUBE, BadMilter, DownMilter, OpenDKIM, PyMilter, Rspamd,
                     make_message)
from test_smtp import Client, queue_id

pytestmark = pytest.mark.skipif(
    not os.path.exists("/usr/sbin/opendkim") or
    not os.path.exists("/usr/bin/rspamd"),
    reason="milter packages missing: make deps")


# --- the world ------------------------------------------------------------

@pytest.fixture(scope="module")
def rspamd(tmp_path_factory):
    # Compiled hyperscan databases are kept between runs (seconds of CPU).
    cache = os.path.join(tempfile.gettempdir(), "splitmx-rspamd-hs")
    os.makedirs(cache, mode=0o700, exist_ok=True)
    r = Rspamd(workdir=str(tmp_path_factory.mktemp("rspamd")),
               hs_cache_dir=cache)
    r.start()
    yield r
    r.cleanup()


@pytest.fixture(scope="module")
def opendkim(tmp_path_factory):
    o = OpenDKIM(workdir=str(tmp_path_factory.mktemp("opendkim")))
    o.start()
    yield o
    o.cleanup()


@pytest.fixture
def pymilter(tmp_path):
    p = PyMilter(workdir=str(tmp_path / "pymilter"))
    p.start()
    yield p
    p.cleanup()


@pytest.fixture
def bad(tmp_path):
    made = []

    def make(mode, **kw):
        b = BadMilter(mode, workdir=str(tmp_path / ("bad-" + mode)), **kw)
        b.start()
        made.append(b)
        return b
    yield make
    for b in made:
        b.cleanup()


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.stop()


def conf(sink, milters, listen="", extra="", main=True):
    """milters: (name, spec, options); every session on the listener on
    @PORT@ sees them in this order (main=False: no such listener).
    example.net and example.test are relayed to the sink (DSNs to
    senders at example.test too).  @PORT@, @CERT@ and @KEY@ become the
    placeholders of Splitmx.config(); every other brace is escaped."""
    lines = ['milter %s "%s" %s' % m for m in milters]
    names = " ".join("milter %s" % m[0] for m in milters)
    text = "\n".join(lines) + """
%s
trusted 127.0.0.1/32
domain "example.net" {
	type relay
	forward to "[127.0.0.1]:%d" tls none
}
domain "example.test" {
	type relay
	forward to "[127.0.0.1]:%d" tls none
}
%s
""" % ("listen on 127.0.0.1 port @PORT@ %s %s" % (names, listen) if main
       else "", sink.port, sink.port, extra)
    text = text.replace("{", "{{").replace("}", "}}")
    return text.replace("@PORT@", "{port}").replace(
        "@CERT@", "{cert}").replace("@KEY@", "{key}")


def send(d, msg, sender="alice@example.test", rcpts=("bob@example.net",),
         source="127.0.0.1", port=None):
    """(code, text) of the end of data, or of the command refused."""
    s = smtplib.SMTP("127.0.0.1", port or d.port, timeout=30,
                     source_address=(source, 0))
    try:
        s.ehlo("client.example")
        code, text = s.mail(sender)
        if code != 250:
            return code, text.decode()
        for r in rcpts:
            code, text = s.rcpt(r)
            if code != 250 and len(rcpts) == 1:
                return code, text.decode()
        try:
            code, text = s.data(msg)
        except smtplib.SMTPDataError as e:
            code, text = e.smtp_code, e.smtp_error
        return code, text.decode()
    finally:
        try:
            s.quit()
        except (smtplib.SMTPException, OSError):
            pass


def headers(data):
    """The header fields of a message, unfolded names in order."""
    head = data.split(b"\r\n\r\n", 1)[0]
    return [l.split(b":", 1)[0].decode() for l in head.split(b"\r\n")
            if l and l[:1] not in (b" ", b"\t")]


def counted(d, **want):
    """Wait for the counters (sent in batches every 250 ms) to say so:
    counted(d, milter_pym_reject=1) is "milter.pym.reject" == 1."""
    def ok():
        st = d.status_json()
        return all(st.get(k.replace("_", ".")) == v for k, v in want.items())
    wait_for(ok, 5, what="counters %r" % want)


def message(subject, extra=(), body="Hello Bob.\n"):
    return make_message(subject=subject, body=body, extra_headers=(
        ["X-Change-Me: old", "X-Delete-Me: bye"] + list(extra)))


# --- OpenDKIM ---------------------------------------------------------------

def test_opendkim_signs_mail_from_a_trusted_client(smx, sink, opendkim):
    d = smx.start(conf(sink, [("dkim", opendkim.spec, "")]))
    code, text = send(d, message("signed"))
    assert code == 250, text
    got = sink.wait(1)[0]
    data = got["data"]
    # Our Received: first, the signature right after it (INSHEADER 0).
    assert headers(data)[:2] == ["Received", "DKIM-Signature"], data[:400]
    assert b"d=example.test" in data and b"s=sel1" in data
    assert opendkim.verify(data), data
    # A changed body breaks it: the check is real.
    assert not opendkim.verify(data.replace(b"Hello Bob.", b"Hello Eve."))
    # The modified copy is what the queue committed and the relay sent.
    assert "event=milter-rewritten" in d.log()


def test_opendkim_does_not_sign_for_other_clients(smx, sink, opendkim):
    d = smx.start(conf(sink, [("dkim", opendkim.spec, "")]))
    code, _ = send(d, message("not signed"), source="127.0.0.2")
    assert code == 250
    data = sink.wait(1)[0]["data"]
    assert b"DKIM-Signature" not in data


# --- rspamd -----------------------------------------------------------------

def test_rspamd_rejects_gtube_with_its_own_reply(smx, sink, rspamd):
    d = smx.start(conf(sink, [("rspamd", rspamd.spec, "")]))
    code, text = send(d, make_message(subject="gtube", body=GTUBE + "\n"))
    assert (code, text) == (554, "5.7.1 Gtube pattern")
    time.sleep(0.5)
    assert sink.messages == []
    counted(d, milter_rspamd_reject=1)
    assert d.ctl_json("show", "queue")["queue"] == []


def test_rspamd_adds_its_headers_to_a_clean_message(smx, sink, rspamd):
    d = smx.start(conf(sink, [("rspamd", rspamd.spec, "")]))
    code, text = send(d, message("clean"))
    assert code == 250, text
    qid = queue_id(text)
    data = sink.wait(1)[0]["data"]
    hs = headers(data)
    assert hs[0] == "Received"
    for h in ["X-Spamd-Result", "X-Rspamd-Queue-Id", "X-Spam-Status",
              "Authentication-Results"]:
        assert h in hs, (h, hs)
    # Macro i is our queue id, {daemon_name} our host name.
    assert b"X-Rspamd-Queue-Id: " + qid.encode() in data
    assert b"Authentication-Results: mx.test.example;" in data
    assert b"\r\n\tdefault: False" in data or b"X-Spamd-Result: default" \
        in data
    # Folded values come back with CR LF line ends, nothing bare.
    assert b"\n" not in data.replace(b"\r\n", b"")
    counted(d, milter_rspamd_accept=1)


# --- the python3-milter milter: replies ---------------------------------------

def test_macros_of_each_stage(smx, sink, pymilter, certs, tmp_path):
    directory = tmp_path / "directory"
    directory.write_text("alice@example.com local\n"
                         "bob@example.com custom bob@notes.example.net\n")
    d = smx.start(conf(sink, [("pym", pymilter.spec, "")],
                       listen="tls pki mx1",
                       extra='pki mx1 cert "@CERT@" key "@KEY@"\n'
                       'table people file "%s"\n'
                       'domain "example.com" {\n\ttype shared\n'
                       '\tdirectory people\n\tlocal to "[127.0.0.1]:%d" '
                       'tls none\n\tforward to "[127.0.0.1]:%d" tls none\n}'
                       % (directory, sink.port, sink.port)))
    s = smtplib.SMTP("127.0.0.1", d.port, timeout=30)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s.starttls(context=ctx)
    refused = s.sendmail("alice@example.test", ["alice@example.com",
                         "bob@example.com", "carol@example.net"],
                         message("macros"))
    s.quit()
    assert refused == {}
    ev = pymilter.events
    conn = ev("connect")[-1]
    assert conn["args"][0] == "unknown"
    m = conn["macros"]
    assert m["j"] == m["{daemon_name}"] == "mx.test.example"
    assert m["{daemon_addr}"] == m["{if_addr}"] == "127.0.0.1"
    assert m["{client_addr}"] == "127.0.0.1"
    assert int(m["{client_port}"]) > 0
    assert m["_"] == "unknown [127.0.0.1]"
    helo = ev("hello")[-1]["macros"]
    assert helo["{tls_version}"].startswith("TLS")
    assert helo["{cipher}"] and int(helo["{cipher_bits}"]) >= 128
    assert ev("envfrom")[-1]["macros"]["{mail_addr}"] == "alice@example.test"
    mailers = {e["macros"]["{rcpt_addr}"]: e["macros"]["{rcpt_mailer}"]
               for e in ev("envrcpt")}
    assert mailers == {"alice@example.com": "local",
                       "bob@example.com": "custom",
                       "carol@example.net": "relay"}
    # No queue id before DATA; ours from DATA on.
    assert "i" not in ev("envrcpt")[-1]["macros"]
    qid = ev("data")[-1]["macros"]["i"]
    assert re.fullmatch(r"[0-9a-f]{24}", qid)
    assert ev("eom")[-1]["macros"]["i"] == qid
    sink.wait(3)


@pytest.mark.parametrize("subject,code,text", [
    ("reject", 550, "5.7.1 Rejected by pymilter (custom text)"),
    ("reject-plain", 550, "5.7.1 Command rejected"),
    ("tempfail", 451, "4.7.1 Tempfail by pymilter, try later"),
    ("tempfail-plain", 451, "4.7.1 Service unavailable, try again later"),
    ("mlreply", 550, "5.7.1 first line\n5.7.1 second line"),
])
def test_end_of_message_refusals(smx, sink, pymilter, subject, code, text):
    d = smx.start(conf(sink, [("pym", pymilter.spec, "")]))
    c = Client(d.port)
    c.ehlo()
    c.ok("MAIL FROM:<alice@example.test>")
    c.ok("RCPT TO:<bob@example.net>")
    c.ok("DATA", 354)
    c.send(message(subject) + b".\r\n")
    assert c.reply() == (code, text)
    # The session goes on; the refused message was never queued.
    c.ok("NOOP")
    assert d.ctl_json("show", "queue")["queue"] == []
    assert "event=message-refused" in d.log()
    time.sleep(0.3)
    assert sink.messages == []


def test_envelope_refusals_at_helo_mail_and_rcpt(smx, sink, pymilter):
    d = smx.start(conf(sink, [("pym", pymilter.spec, "")]))
    c = Client(d.port)
    assert c.cmd("EHLO reject.example") == (550, "5.7.1 HELO rejected by "
                                            "pymilter")
    # Not greeted: MAIL needs a HELO first; the refusal holds.
    assert c.cmd("MAIL FROM:<a@example.test>")[0] == 503
    assert c.cmd("EHLO other.example")[0] == 550
    c = Client(d.port)
    c.ehlo()
    assert c.cmd("MAIL FROM:<reject-mail@example.test>") == (
        550, "5.7.1 Sender rejected by pymilter")
    assert c.cmd("MAIL FROM:<tempfail-mail@example.test>") == (
        451, "4.7.1 Sender tempfailed by pymilter")
    c.ok("MAIL FROM:<alice@example.test>")
    assert c.cmd("RCPT TO:<reject-rcpt@example.net>") == (
        550, "5.1.1 Recipient rejected by pymilter")
    assert c.cmd("RCPT TO:<tempfail-rcpt@example.net>")[0] == 451
    c.ok("RCPT TO:<bob@example.net>")
    c.ok("DATA", 354)
    c.send(message("plain") + b".\r\n")
    code, text = c.reply()
    assert code == 250
    got = sink.wait(1)[0]
    assert got["rcpts"] == ["bob@example.net"]
    # The second EHLO is refused without asking the milter again.
    counted(d, milter_pym_reject=3, milter_pym_tempfail=2)


def test_discard_answers_250_and_delivers_nothing(smx, sink, pymilter):
    d = smx.start(conf(sink, [("pym", pymilter.spec, "")]))
    code, text = send(d, message("discard"))
    assert code == 250 and "queued as" in text
    code, _ = send(d, message("plain"), rcpts=("discard-rcpt@example.net",))
    assert code == 250
    d.wait_log(r"event=message-discarded .*by=milter")
    time.sleep(0.5)
    assert sink.messages == []
    assert d.ctl_json("show", "queue")["queue"] == []
    counted(d, milter_pym_discard=2)


def test_quarantine_holds_until_release(smx, sink, pymilter):
    d = smx.start(conf(sink, [("pym", pymilter.spec, "")]))
    code, text = send(d, message("quarantine"))
    assert code == 250
    qid = queue_id(text)
    q = d.ctl_json("show", "queue")["queue"]
    assert [(i["id"], i["state"], i["quarantine"]) for i in q] == [
        (qid, "quarantined", "held by pymilter")]
    r = d.ctl("show", "queue")
    assert "quarantined" in r.stdout and 'reason="held by pymilter"' in \
        r.stdout
    shown = d.ctl("show", "message", qid).stdout
    assert "quarantined: held by pymilter" in shown
    assert d.ctl_json("show", "message", qid)["quarantine"] == \
        "held by pymilter"
    time.sleep(1)
    assert sink.messages == []      # held: never scheduled
    wait_for(lambda: d.status_json().get("queue.quarantined") == 1, 10,
             what="queue.quarantined")
    counted(d, milter_pym_quarantine=1)
    # Only an admin releases; schedule does not.
    d.ctl("schedule", qid)
    time.sleep(0.5)
    assert sink.messages == []
    r = d.ctl("release", qid)
    assert r.returncode == 0 and "released 1 message" in r.stdout, r.stdout
    got = sink.wait(1)
    assert got[0]["rcpts"] == ["bob@example.net"]
    d.wait_log(r"id=%s event=released by=operator" % qid)
    # A second release: not held any more (or gone).
    assert d.ctl("release", qid).returncode == 1


def test_quarantine_survives_a_restart_and_release_all(smx, sink, pymilter):
    d = smx.start(conf(sink, [("pym", pymilter.spec, "")]))
    code, text = send(d, message("quarantine"))
    qid = queue_id(text)
    d.stop()
    d2 = smx.start(conf(sink, [("pym", pymilter.spec, "")]), port=d.port)
    q = d2.ctl_json("show", "queue")["queue"]
    assert [(i["id"], i["state"]) for i in q] == [(qid, "quarantined")]
    time.sleep(0.5)
    assert sink.messages == []
    r = d2.ctl("release", "all")
    assert "released 1 message" in r.stdout
    sink.wait(1)


def test_remove_deletes_a_quarantined_message(smx, sink, pymilter):
    d = smx.start(conf(sink, [("pym", pymilter.spec, "")]))
    _, text = send(d, message("quarantine"))
    qid = queue_id(text)
    assert d.ctl("remove", qid).returncode == 0
    assert d.ctl_json("show", "queue")["queue"] == []


# --- the python3-milter milter: modifications ---------------------------------

def test_header_and_body_changes_arrive_byte_for_byte(smx, sink, pymilter):
    d = smx.start(conf(sink, [("pym", pymilter.spec, "")]))
    code, text = send(d, message(
        "addheader insheader chgheader delheader replbody"))
    assert code == 250, text
    data = sink.wait(1)[0]["data"]
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    # Received: stays first (four lines: folded), the inserted one next.
    assert lines[0].startswith(b"Received: from client.example")
    rest = [l for l in lines if not l.startswith((b"\t", b" "))][1:]
    assert rest == [
        b"X-PyMilter-Inserted: top",
        b"From: Alice <alice@example.test>",
        b"To: Bob <bob@example.net>",
        b"Subject: addheader insheader chgheader delheader replbody",
        b"Date: Mon, 01 Jan 2024 00:00:00 +0000",
        rest[5],
        b"X-Change-Me: changed by pymilter",
        b"X-PyMilter-Added: yes",
    ], rest
    assert rest[5].startswith(b"Message-ID: ")
    assert b"X-Delete-Me" not in data
    assert body == b"Body replaced by pymilter.\r\n"


def test_large_bodies_both_ways(smx, sink, pymilter):
    d = smx.start(conf(sink, [("pym", pymilter.spec, "")]))
    big = ("y" * 76 + "\n") * 4000        # 308000 octets with CR LF
    code, text = send(d, message("bigbody", body=big))
    assert code == 250, text
    data = sink.wait(1)[0]["data"]
    body = data.split(b"\r\n\r\n", 1)[1]
    assert body == (b"x" * 78 + b"\r\n") * 2500
    # The original went to the milter in chunks of at most 65535 octets.
    chunks = [e["args"][0] for e in pymilter.events("body")]
    assert max(chunks) <= 65535 and sum(chunks) == 78 * 4000


def test_envelope_changes(smx, sink, pymilter):
    d = smx.start(conf(sink, [("pym", pymilter.spec, "")]))
    code, text = send(d, message("addrcpt delrcpt chgfrom"),
                      rcpts=("bob@example.net", "carol@example.net"))
    assert code == 250, text
    got = sink.wait(1)
    wait_for(lambda: sum(len(m["rcpts"]) for m in sink.messages) >= 2, 10,
             what="two recipients")
    rcpts = sorted(r for m in sink.messages for r in m["rcpts"])
    assert rcpts == ["added@example.net", "carol@example.net"]
    assert {m["from"] for m in got} == {"changed@example.test"}
    log = d.log()
    assert "event=milter-delrcpt to=<bob@example.net> removed=1" in log
    assert "event=milter-addrcpt to=<added@example.net> route=forward" in log
    assert "event=milter-chgfrom from=<alice@example.test> " \
        "to=<changed@example.test>" in log


def test_added_recipient_with_parameters(smx, sink, pymilter):
    d = smx.start(conf(sink, [("pym", pymilter.spec, "")]))
    code, text = send(d, message("addrcptpar"))
    assert code == 250
    qid = queue_id(text)
    wait_for(lambda: sum(len(m["rcpts"]) for m in sink.messages) >= 2, 10,
             what="two recipients")
    assert sorted(r for m in sink.messages for r in m["rcpts"]) == [
        "addedpar@example.net", "bob@example.net"]
    assert qid in d.log()


def test_unroutable_added_recipient_is_bounced(smx, sink, pymilter,
                                               tmp_path):
    directory = tmp_path / "directory"
    directory.write_text("bob@example.net local\n")
    body = ('milter pym "%s"\nlisten on 127.0.0.1 port {port} milter pym\n'
            'table people file "%s"\n'
            'domain "example.net" {{\n\ttype authoritative\n'
            '\tdirectory people\n\tlocal to "[127.0.0.1]:%d" tls none\n}}\n'
            'domain "example.test" {{\n\ttype relay\n'
            '\tforward to "[127.0.0.1]:%d" tls none\n}}\n'
            % (pymilter.spec, directory, sink.port, sink.port))
    d = smx.start(body)
    code, text = send(d, message("addrcpt"))
    assert code == 250, text
    msgs = sink.wait(2)
    dsn = [m for m in msgs if m["from"] in ("", "<>")]
    assert len(dsn) == 1 and dsn[0]["rcpts"] == ["alice@example.test"]
    assert b"added@example.net" in dsn[0]["data"]
    assert b"5.1.1" in dsn[0]["data"]
    assert [m["rcpts"] for m in msgs if m not in dsn] == [["bob@example.net"]]
    assert "event=milter-addrcpt to=<added@example.net>" in d.log()


def test_every_recipient_deleted_delivers_nothing(smx, sink, pymilter):
    d = smx.start(conf(sink, [("pym", pymilter.spec, "")]))
    code, text = send(d, message("delrcpt"))
    assert code == 250 and "queued as" in text
    d.wait_log(r"event=message-without-recipients")
    time.sleep(0.5)
    assert sink.messages == []


def test_accept_at_rcpt_ends_the_milters_part(smx, sink, pymilter):
    d = smx.start(conf(sink, [("pym", pymilter.spec, "")]))
    code, _ = send(d, message("addheader"), rcpts=("accept-rcpt@example.net",))
    assert code == 250
    data = sink.wait(1)[0]["data"]
    # No EOM for that message: its addheader never happened.
    assert b"X-PyMilter-Added" not in data
    assert pymilter.events("eom") == []


def test_progress_keeps_a_slow_milter_within_its_timeout(smx, sink,
                                                         pymilter):
    d = smx.start(conf(sink, [("pym", pymilter.spec, "timeout 2s")]))
    t = time.monotonic()
    code, text = send(d, message("progress3 addheader"))
    assert code == 250, text
    assert time.monotonic() - t >= 3
    assert b"X-PyMilter-Added: yes" in sink.wait(1)[0]["data"]


def test_bdat_message_is_filtered(smx, sink, pymilter):
    d = smx.start(conf(sink, [("pym", pymilter.spec, "")]))
    c = Client(d.port)
    c.ehlo()
    c.ok("MAIL FROM:<alice@example.test>")
    c.ok("RCPT TO:<bob@example.net>")
    msg = message("addheader")
    c.send(b"BDAT %d LAST\r\n" % len(msg) + msg)
    code, text = c.reply()
    assert code == 250, text
    assert b"X-PyMilter-Added: yes" in sink.wait(1)[0]["data"]
    c = Client(d.port)
    c.ehlo()
    c.ok("MAIL FROM:<alice@example.test>")
    c.ok("RCPT TO:<bob@example.net>")
    msg = message("reject")
    c.send(b"BDAT %d LAST\r\n" % len(msg) + msg)
    assert c.reply() == (550, "5.7.1 Rejected by pymilter (custom text)")


def test_negotiated_leading_space_and_no_replies(smx, sink, tmp_path):
    p = PyMilter(workdir=str(tmp_path / "pm"), leadspc=True, noreply=True,
                 symlist=True)
    p.start()
    try:
        d = smx.start(conf(sink, [("pym", p.spec, "")]))
        code, text = send(d, message("addheader"))
        assert code == 250, text
        data = sink.wait(1)[0]["data"]
        hdrs = {e["args"][0]: e["args"][1] for e in p.events("header")}
        # HDR_LEADSPC: the value as it is after the colon ...
        assert hdrs["From"] == " Alice <alice@example.test>"
        # ... and the milter's own value is written as it gave it.
        assert b"\r\nX-PyMilter-Added:yes\r\n" in data
        # Its macro list for RCPT and end of message was honoured.
        assert p.events("envrcpt")[-1]["macros"]["{rcpt_mailer}"] == "relay"
        assert p.events("eom")[-1]["macros"]["i"] == queue_id(text)
    finally:
        p.cleanup()


def test_rset_aborts_and_the_next_message_goes_on(smx, sink, pymilter):
    d = smx.start(conf(sink, [("pym", pymilter.spec, "")]))
    c = Client(d.port)
    c.ehlo()
    c.ok("MAIL FROM:<first@example.test>")
    c.ok("RCPT TO:<bob@example.net>")
    c.ok("RSET")
    c.ok("MAIL FROM:<alice@example.test>")
    c.ok("RCPT TO:<carol@example.net>")
    c.ok("DATA", 354)
    c.send(message("addheader") + b".\r\n")
    assert c.reply()[0] == 250
    got = sink.wait(1)[0]
    assert got["rcpts"] == ["carol@example.net"]
    assert b"X-PyMilter-Added: yes" in got["data"]
    # One connection for the session: ABORT between the two messages.
    # (The start's port probe is a session of its own: not this one.)
    conn = pymilter.events("eom")[-1]["conn"]
    cbs = [e["cb"] for e in pymilter.events() if e.get("conn") == conn and
           e["cb"] in ("connect", "envfrom", "abort", "eom")]
    assert cbs == ["connect", "envfrom", "abort", "envfrom", "eom"], cbs


def test_a_slow_milter_delays_only_its_own_sessions(smx, sink, pymilter,
                                                    bad):
    hang = bad("hangeom")
    slow, fast = free_port(), free_port()
    body = ('milter slow "%s" timeout 4s\nmilter pym "%s"\n'
            'listen on 127.0.0.1 port %d milter slow\n'
            'listen on 127.0.0.1 port %d milter pym\n'
            % (hang.spec, pymilter.spec, slow, fast))
    d = smx.start(body + conf(sink, [], main=False), port=fast)
    result = {}

    def held():
        result["slow"] = send(d, message("plain slow"), port=slow)
    th = threading.Thread(target=held)
    th.start()
    time.sleep(0.5)          # the slow session is at its end of data now
    t = time.monotonic()
    for i in range(5):
        assert send(d, message("fast %d" % i), port=fast)[0] == 250
    assert time.monotonic() - t < 3
    assert "slow" not in result
    th.join(10)
    assert result["slow"][0] == 451
    assert len(sink.wait(5)) == 5


# --- several milters, a unix socket, a reload ---------------------------------

def test_several_milters_in_listener_order(smx, sink, tmp_path):
    one = PyMilter(workdir=str(tmp_path / "one")).start()
    two = PyMilter(workdir=str(tmp_path / "two")).start()
    try:
        d = smx.start(conf(sink, [("one", one.spec, ""),
                                  ("two", two.spec, "")]))
        code, _ = send(d, message("addheader insheader"))
        assert code == 250
        data = sink.wait(1)[0]["data"]
        assert data.count(b"X-PyMilter-Added: yes") == 2
        assert data.count(b"X-PyMilter-Inserted: top") == 2
        # A reject from the first: the second never sees the end.
        code, text = send(d, message("reject"))
        assert (code, text) == (550, "5.7.1 Rejected by pymilter "
                                     "(custom text)")
        assert [e["args"][0] for e in one.events("eom")] == [
            "addheader insheader", "reject"]
        assert [e["args"][0] for e in two.events("eom")] == [
            "addheader insheader"]
        wait_for(lambda: len(two.events("abort")) >= 1, 5, what="abort")
        counted(d, milter_one_reject=1, milter_two_reject=0)
    finally:
        one.cleanup()
        two.cleanup()


def test_unix_milter_reached_from_the_chroot(smx, sink, tmp_path):
    sock = str(tmp_path / "pym.sock")
    p = PyMilter(workdir=str(tmp_path / "pm"), unix=sock).start()
    try:
        d = smx.start(conf(sink, [("pym", p.spec, "")]))
        if os.geteuid() == 0:
            # The filter process cannot see the socket: it is chrooted.
            assert "filter: privileges dropped, root=/var/empty" in d.log()
        code, text = send(d, message("addheader"))
        assert code == 250, text
        assert b"X-PyMilter-Added: yes" in sink.wait(1)[0]["data"]
    finally:
        p.cleanup()


def test_unix_milter_down_is_an_error(smx, sink, tmp_path):
    d = smx.start(conf(sink, [("gone", "unix:%s" % (tmp_path / "none.sock"),
                               "on-error tempfail")]))
    code, text = send(d, message("plain"))
    assert code == 451 and text.startswith("4.7.1")
    assert "milter=gone event=error" in d.log()


def test_reload_adds_a_milter_for_new_sessions_only(smx, sink, pymilter):
    d = smx.start(conf(sink, [("pym", pymilter.spec, "")]).replace(
        " milter pym \n", " \n", 1))
    old = Client(d.port)
    old.ehlo()
    with open(d.conf_path) as f:
        text = f.read()
    with open(d.conf_path, "w") as f:
        f.write(text.replace("port %d \n" % d.port,
                             "port %d milter pym\n" % d.port))
    r = d.ctl("reload")
    assert r.returncode == 0 and "changed: listen on 127.0.0.1" in \
        r.stdout, r.stdout + r.stderr
    # The session that started before keeps its generation: no milter.
    old.ok("MAIL FROM:<alice@example.test>")
    old.ok("RCPT TO:<bob@example.net>")
    old.ok("DATA", 354)
    old.send(message("addheader old") + b".\r\n")
    assert old.reply()[0] == 250
    code, _ = send(d, message("addheader new"))
    assert code == 250
    msgs = sink.wait(2)
    by = {m["data"].split(b"Subject: ")[1].split(b"\r\n")[0]: m["data"]
          for m in msgs}
    assert b"X-PyMilter-Added" not in by[b"addheader old"]
    assert b"X-PyMilter-Added: yes" in by[b"addheader new"]


# --- on-error ---------------------------------------------------------------

@pytest.mark.parametrize("on_error", ["tempfail", "accept", "reject"])
def test_down_hanging_and_garbage_milters(smx, sink, bad, on_error):
    down = DownMilter()
    hang = bad("hang")
    garbage = bad("garbage")
    ports = [free_port() for _ in range(3)]
    milters = [("down", down.spec), ("hang", hang.spec),
               ("garbage", garbage.spec)]
    body = "".join('milter %s "%s" on-error %s timeout 2s\n'
                   % (n, s, on_error) for n, s in milters)
    body += "".join("listen on 127.0.0.1 port %d milter %s\n" % (p, n)
                    for p, (n, _) in zip(ports, milters))
    body += conf(sink, [], main=False)
    d = smx.start(body, port=ports[0])
    for p, (name, _) in zip(ports, milters):
        t = time.monotonic()
        code, text = send(d, message("plain " + name), port=p)
        if on_error == "tempfail":
            assert (code, text) == (451, "4.7.1 Service unavailable, try "
                                         "again later"), name
        elif on_error == "reject":
            assert (code, text) == (550, "5.7.1 Command rejected"), name
        else:
            assert code == 250, (name, text)
        # A milter that hangs costs its own timeout, no more.
        assert time.monotonic() - t < (4 if name == "hang" else 2), name
    log = d.log()
    for name, _ in milters:
        assert re.search(r"milter=%s event=error .*on-error=%s" %
                         (name, on_error), log), name
    if on_error == "accept":
        assert sorted(m["data"].split(b"Subject: plain ")[1][:4]
                      for m in sink.wait(3)) == [b"down", b"garb", b"hang"]
        # Once per session (the start's port probe is a session too).
        assert log.count("(skipped for the rest of the session)") >= 3
    wait_for(lambda: all(d.status_json()["milter.%s.error" % n] >= 1
                         for n, _ in milters), 5, what="error counters")


def test_failures_at_the_end_of_the_message(smx, sink, bad):
    modes = ["hangeom", "smuggle", "badreplycode", "closemid", "modearly"]
    ms = {m: bad(m) for m in modes}
    ms["progress"] = bad("progress", delay=1, count=3)
    ports = {m: free_port() for m in ms}
    body = "".join('milter %s "%s" on-error tempfail timeout 2s\n'
                   % (m, b.spec) for m, b in ms.items())
    body += "".join("listen on 127.0.0.1 port %d milter %s\n" % (ports[m], m)
                    for m in ms)
    body += conf(sink, [], main=False)
    d = smx.start(body, port=ports["hangeom"])
    r = {m: send(d, message("plain " + m), port=ports[m]) for m in ms}
    # Times out at the end of data: 451, never a 250.
    assert r["hangeom"] == (451, "4.7.1 Service unavailable, try again "
                                 "later")
    # CR LF smuggled in a reply: the first line only, nothing after it.
    assert r["smuggle"] == (550, "5.7.1 bad")
    # Not a 4xx or 5xx: a broken milter.
    assert r["badreplycode"][0] == 451
    assert r["closemid"][0] == 451
    assert r["modearly"][0] == 451
    # Three progress replies one second apart outlast a 2 s timeout.
    assert r["progress"][0] == 250
    msgs = sink.wait(1)
    assert len(msgs) == 1 and b"plain progress" in msgs[0]["data"]
    log = d.log()
    assert "smuggled" not in log.split("milter=smuggle")[0]
    assert re.search(r"milter=modearly event=error error=\"modification "
                     r"'h' before the end of the message\"", log)


# --- counters ---------------------------------------------------------------

def test_counters_on_the_status_socket_and_metrics(smx, sink, pymilter):
    mport = free_port()
    d = smx.start(conf(sink, [("pym", pymilter.spec, "")],
                       extra="metrics listen on 127.0.0.1 port %d" % mport))
    # Every milter's counters are there from the start, at 0.
    st = wait_for(lambda: "milter.pym.error" in d.status_json() and
                  d.status_json(), 5, what="milter counters")
    for v in ["accept", "reject", "tempfail", "discard", "quarantine",
              "error"]:
        assert st["milter.pym.%s" % v] == 0
    send(d, message("plain"))
    send(d, message("reject"))
    send(d, message("quarantine"))
    counted(d, milter_pym_quarantine=1, milter_pym_accept=2,
            milter_pym_reject=1)
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport,
                                  timeout=5).read().decode()
    assert "splitmx_milter_pym_reject_total 1" in text
    assert "splitmx_milter_pym_accept_total 2" in text
    assert "splitmx_queue_quarantined" in text
