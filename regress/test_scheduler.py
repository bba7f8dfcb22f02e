"""The scheduler, the delivery status notifications and the queue verbs.

Mail goes in by SMTP for example.com (a relay domain whose "forward to"
is an aiosmtpd server on loopback with scripted answers) and comes out
there; DSNs go to the sender's domain, sender.example, another relay
domain whose host is a second server.  The DSNs are parsed with
Python's email package.  Times are short: "retry 1s to 4s", "warn after
2s"; the minimum "expire" is a minute, so the expiry test moves a
message's arrival back in its envelope file while the daemon is down.
"""
import asyncio
import email
import email.policy
import json
import os
import re
import smtplib
import socket
import threading
import time
from collections import Counter

import pytest

from conftest import free_port, wait_for

ID_RE = re.compile(r"queued as ([0-9a-f]{24})")
SENDER = "alice@sender.example"


class Server:
    """An aiosmtpd server with scripted answers.

    rcpt(address, n) may return a reply to the n-th RCPT of that address
    (None: accept); eom(n) a reply to the n-th end of data; delay is how
    long the end of data takes.  attempts holds (monotonic time,
    address) for every RCPT."""

    def __init__(self, rcpt=None, eom=None, delay=0.0, **smtp_kw):
        from aiosmtpd.controller import Controller
        self.rcpt_hook, self.eom_hook, self.delay = rcpt, eom, delay
        self.messages, self.attempts = [], []
        self.seen = Counter()
        self.eoms = 0
        self.lock = threading.Lock()
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1",
                                     port=self.port, **smtp_kw)
        self.controller.start()

    async def handle_RCPT(self, server, session, envelope, address,
                          rcpt_options):
        with self.lock:
            self.seen[address] += 1
            n = self.seen[address]
            self.attempts.append((time.monotonic(), address))
        reply = self.rcpt_hook(address, n) if self.rcpt_hook else None
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        with self.lock:
            self.eoms += 1
            n = self.eoms
        reply = self.eom_hook(n) if self.eom_hook else None
        if reply:
            return reply
        with self.lock:
            self.messages.append({
                "from": envelope.mail_from,
                "rcpts": list(envelope.rcpt_tos),
                "data": envelope.original_content or envelope.content,
            })
        return "250 2.0.0 OK"

    def wait(self, n, timeout=20):
        wait_for(lambda: len(self.messages) >= n, timeout,
                 what="%d messages at port %d" % (n, self.port))
        return self.messages

    def stop(self):
        self.controller.stop()


class Stall:
    """A TCP server that accepts and never says a word."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.done = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.done:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)

    def stop(self):
        self.done = True
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.fixture
def servers():
    started = []
    yield started
    for s in started:
        s.stop()


def server(servers, **kw):
    s = Server(**kw)
    servers.append(s)
    return s


def start(smx, dest, dsn=None, conf="", other=None):
    """splitmx with example.com (and other.example) relayed to dest
    (and other), sender.example to dsn."""
    body = ('domain "example.com" {\n\ttype relay\n'
            '\tforward to "[127.0.0.1]:%d" tls none\n}\n' % dest.port)
    if other is not None:
        body += ('domain "other.example" {\n\ttype relay\n'
                 '\tforward to "[127.0.0.1]:%d" tls none\n}\n' % other.port)
    if dsn is not None:
        body += ('domain "sender.example" {\n\ttype relay\n'
                 '\tforward to "[127.0.0.1]:%d" tls none\n}\n' % dsn.port)
    body += conf + "\n"
    return smx.start(body.replace("{", "{{").replace("}", "}}"))


def restart(d):
    """Start d again and wait for the queue's recovery."""
    n = d.log().count("event=recovered")
    d.start()
    wait_for(lambda: d.log().count("event=recovered") > n, 30,
             what="queue recovery")
    return d


def message(tag, size=0):
    head = ("From: Alice <%s>\r\nTo: <bob@example.com>\r\nSubject: %s\r\n"
            "Message-ID: <%s@client.example>\r\n\r\n" % (SENDER, tag, tag))
    body = "Hello, this is %s.\r\n" % tag
    while len(body) < size:
        body += "filler line for %s\r\n" % tag
    return (head + body).encode()


def send(port, data, rcpts=("bob@example.com",), sender=SENDER,
         mail_opts=(), rcpt_opts=None):
    """One message; rcpt_opts maps an address to its RCPT parameters.
    Returns the queue id."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        c.ehlo("client.example")
        code, resp = c.mail(sender, list(mail_opts))
        assert code == 250, resp
        for r in rcpts:
            code, resp = c.rcpt(r, list((rcpt_opts or {}).get(r, ())))
            assert code == 250, (r, resp)
        code, resp = c.data(data)
        assert code == 250, resp
        return ID_RE.search(resp.decode()).group(1)


def send_many(port, items, sender=SENDER):
    """Several messages over one session (the server's greeting takes a
    moment): items are (data, rcpts)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        c.ehlo("client.example")
        for data, rcpts in items:
            assert not c.sendmail(sender, list(rcpts), data)


def strip_received(data):
    assert data.startswith(b"Received: "), data[:80]
    lines = data.split(b"\r\n")
    i = 1
    while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
        i += 1
    return b"\r\n".join(lines[i:])


def queue(d):
    return d.ctl_json("show", "queue")["queue"]


def spool_ids(d):
    return sorted({f[:24] for f in os.listdir(os.path.join(d.queue_dir,
                                                           "queue"))})


def stat(d, name):
    return d.status_json().get(name, 0)


def parse_dsn(data):
    """(the whole DSN, per-message fields, [per-recipient fields],
    the third part) of a DSN as it arrived."""
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report", msg
    assert msg.get_param("report-type") == "delivery-status"
    parts = msg.get_payload()
    assert len(parts) == 3, [p.get_content_type() for p in parts]
    assert parts[0].get_content_type() == "text/plain"
    assert parts[1].get_content_type() == "message/delivery-status"
    blocks = parts[1].get_payload()
    return msg, blocks[0], blocks[1:], parts[2]


def dsn_at(dsn, n=1, timeout=20):
    msgs = dsn.wait(n, timeout)
    for m in msgs:
        assert m["from"] in ("", "<>"), m["from"]
        assert m["rcpts"] == [SENDER]
    return [parse_dsn(m["data"]) for m in msgs]


def wait_gone(d, qid, timeout=20):
    wait_for(lambda: qid not in spool_ids(d) and
             all(i["id"] != qid for i in queue(d)), timeout,
             what="message %s out of the queue" % qid)


# -- delivery ---------------------------------------------------------------

def test_delivered_byte_exact_and_removed(smx, servers):
    sink = server(servers)
    d = start(smx, sink)
    data = message("exact", 20000) + b".leading dot\r\n"
    qid = send(d.port, data, rcpts=("bob@example.com", "carol@example.com"))
    m = sink.wait(1)[0]
    assert m["from"] == SENDER
    assert m["rcpts"] == ["bob@example.com", "carol@example.com"]
    assert strip_received(m["data"]) == data
    wait_gone(d, qid)
    d.wait_log(r"id=%s event=done delivered=2 failed=0" % qid)
    wait_for(lambda: stat(d, "messages.delivered") == 1, 5,
             what="messages.delivered == 1")
    assert len(sink.messages) == 1


def test_recipients_are_grouped_by_destination(smx, servers):
    a, b = server(servers), server(servers)
    d = start(smx, a, other=b)
    send(d.port, message("grouped"), rcpts=("x1@example.com",
                                            "y1@other.example",
                                            "x2@example.com"))
    assert a.wait(1)[0]["rcpts"] == ["x1@example.com", "x2@example.com"]
    assert b.wait(1)[0]["rcpts"] == ["y1@other.example"]
    time.sleep(0.5)
    assert len(a.messages) == 1 and len(b.messages) == 1


def test_retries_follow_the_schedule(smx, servers):
    sink = server(servers, rcpt=lambda a, n: "451 4.3.0 try again later")
    d = start(smx, sink, conf="retry 1s to 4s expire 1h")
    qid = send(d.port, message("retry"))
    wait_for(lambda: len(sink.attempts) >= 5, 30, what="five attempts")
    t = [a[0] for a in sink.attempts[:5]]
    gaps = [round(y - x, 2) for x, y in zip(t, t[1:])]
    print("retry gaps (1s to 4s):", gaps)
    for gap, want in zip(gaps, (1, 2, 4, 4)):
        assert want - 0.05 <= gap <= want + 1.3, gaps
    item = [i for i in queue(d) if i["id"] == qid][0]
    assert item["state"] == "deferred"
    assert item["tries"] >= 5
    assert item["last_error"].startswith("451 4.3.0 try again later")
    assert item["next_try"] > time.time() - 1
    wait_for(lambda: stat(d, "messages.deferred") >= 5, 5,
             what="messages.deferred counted")
    assert sink.messages == []


def test_tempfail_then_success_delivers_once(smx, servers):
    sink = server(servers, rcpt=lambda a, n: "450 4.2.0 busy" if n <= 2
                  else None)
    d = start(smx, sink, conf="retry 1s to 2s expire 1h")
    qid = send(d.port, message("later"))
    m = sink.wait(1, 15)[0]
    assert strip_received(m["data"]) == message("later")
    wait_gone(d, qid)
    assert len(re.findall(r"id=%s event=deferred to=<bob@example.com> "
                          r"tries=\d" % qid, d.log())) == 2
    time.sleep(1.5)
    assert len(sink.messages) == 1


def test_deferred_destination_does_not_block_others(smx, servers):
    stall = Stall()
    servers.append(stall)
    good = server(servers)
    d = start(smx, good, other=stall)
    send_many(d.port, [(message("stuck%d" % i), ("s%d@other.example" % i,))
                       for i in range(40)])
    t0 = time.monotonic()
    send_many(d.port, [(message("free%d" % i), ("f%d@example.com" % i,))
                       for i in range(3)])
    good.wait(3, 10)
    assert time.monotonic() - t0 < 5
    # The stalled destination holds a bounded share of the deliveries.
    out = [i for i in queue(d) if i["state"] == "queued"]
    assert len(out) == 40


# -- DSNs -------------------------------------------------------------------

def test_rcpt_5xx_bounces_to_the_sender(smx, servers):
    sink = server(servers, rcpt=lambda a, n:
                  "550 5.1.1 <%s>: no such user here" % a
                  if a.startswith("nobody") else None)
    dsn = server(servers)
    d = start(smx, sink, dsn)
    qid = send(d.port, message("bounce"),
               rcpts=("bob@example.com", "nobody@example.com"))
    assert sink.wait(1)[0]["rcpts"] == ["bob@example.com"]
    [(msg, per_msg, rcpts, orig)] = dsn_at(dsn)
    assert msg["To"].addresses[0].addr_spec == SENDER
    assert "MAILER-DAEMON@mx.test.example" in msg["From"]
    assert msg["Auto-Submitted"] == "auto-replied"
    assert per_msg["Reporting-MTA"] == "dns; mx.test.example"
    assert per_msg["Arrival-Date"]
    assert len(rcpts) == 1
    r = rcpts[0]
    assert r["Final-Recipient"] == "rfc822; nobody@example.com"
    assert r["Action"] == "failed"
    assert r["Status"] == "5.1.1"
    assert r["Remote-MTA"] == "dns; 127.0.0.1"
    diag = " ".join(r["Diagnostic-Code"].split())
    assert diag.startswith("smtp; 550 5.1.1 <nobody@example.com>: no such "
                           "user here"), diag
    # Text for people is wrapped at 78 columns.
    text = " ".join(msg.get_payload()[0].get_content().split())
    assert "nobody@example.com" in text and "no such user here" in text
    assert orig.get_content_type() == "message/rfc822"
    inner = orig.get_payload()[0]
    assert inner["Subject"] == "bounce"
    assert "Hello, this is bounce." in inner.get_content()
    wait_gone(d, qid)
    d.wait_log(r"id=%s event=done delivered=1 failed=1" % qid)
    wait_for(lambda: stat(d, "messages.bounced") == 1, 5,
             what="messages.bounced == 1")


def test_end_of_data_5xx_bounces_every_recipient(smx, servers):
    sink = server(servers, eom=lambda n: "554 5.7.1 message content rejected")
    dsn = server(servers)
    d = start(smx, sink, dsn)
    qid = send(d.port, message("eom"),
               rcpts=("bob@example.com", "carol@example.com"))
    [(msg, _, rcpts, orig)] = dsn_at(dsn)
    assert sorted(r["Final-Recipient"] for r in rcpts) == [
        "rfc822; bob@example.com", "rfc822; carol@example.com"]
    for r in rcpts:
        assert r["Action"] == "failed" and r["Status"] == "5.7.1"
        assert "554 5.7.1 message content rejected" in r["Diagnostic-Code"]
    wait_gone(d, qid)
    assert sink.messages == []


def test_no_dsn_to_the_null_sender(smx, servers):
    sink = server(servers, rcpt=lambda a, n: "550 5.1.1 no such user")
    dsn = server(servers)
    d = start(smx, sink, dsn)
    qid = send(d.port, message("nullsender"), sender="")
    d.wait_log(r"id=%s event=failed to=<bob@example.com> .*dsn=\"none "
               r"\(null sender\)\" dropped=yes" % qid)
    wait_gone(d, qid)
    assert queue(d) == [] and spool_ids(d) == []
    time.sleep(1)
    assert dsn.messages == []


def test_notify_never_and_notify_failure(smx, servers):
    sink = server(servers, rcpt=lambda a, n: "550 5.1.1 unknown user")
    dsn = server(servers)
    d = start(smx, sink, dsn)
    qid = send(d.port, message("notify"),
               rcpts=("quiet@example.com", "loud@example.com"),
               rcpt_opts={"quiet@example.com": ["NOTIFY=NEVER"],
                          "loud@example.com": ["NOTIFY=FAILURE,DELAY"]})
    [(_, _, rcpts, _)] = dsn_at(dsn)
    assert [r["Final-Recipient"] for r in rcpts] == [
        "rfc822; loud@example.com"]
    wait_gone(d, qid)
    assert re.search(r"id=%s event=failed to=<quiet@example.com> .*"
                     r"dsn=\"none \(NOTIFY\)\"" % qid, d.log())

    # NOTIFY=NEVER alone: nothing at all.
    qid = send(d.port, message("never"), rcpts=("quiet@example.com",),
               rcpt_opts={"quiet@example.com": ["NOTIFY=NEVER"]})
    wait_gone(d, qid)
    time.sleep(1)
    assert len(dsn.messages) == 1



def test_notify_success_to_a_server_without_dsn_gets_a_relayed_dsn(
        smx, servers):
    """aiosmtpd offers no DSN: for the recipient that asked for SUCCESS
    we send the "relayed" DSN ourselves (RFC 3461 5.2.2), headers only
    even with RET=FULL; the others, and the null sender, get none."""
    sink = server(servers)
    dsn = server(servers)
    d = start(smx, sink, dsn)
    qid = send(d.port, message("relayed", 5000), mail_opts=["RET=FULL"],
               rcpts=("bob@example.com", "carol@example.com",
                      "dave@example.com"),
               rcpt_opts={"bob@example.com": ["NOTIFY=SUCCESS,FAILURE"],
                          "carol@example.com": ["NOTIFY=FAILURE"]})
    assert sorted(sink.wait(1)[0]["rcpts"]) == [
        "bob@example.com", "carol@example.com", "dave@example.com"]
    [(msg, per_msg, rcpts, orig)] = dsn_at(dsn)
    assert msg["Subject"].startswith("Relayed Mail")
    assert [r["Final-Recipient"] for r in rcpts] == [
        "rfc822; bob@example.com"]
    r = rcpts[0]
    assert r["Action"] == "relayed"
    assert r["Status"] == "2.0.0"
    assert r["Remote-MTA"] == "dns; 127.0.0.1"
    assert " ".join(r["Diagnostic-Code"].split()) == "smtp; 250 2.0.0 OK"
    # Text for people is wrapped at 78 columns.
    text = " ".join(msg.get_payload()[0].get_content().split())
    assert "bob@example.com" in text and "250 2.0.0 OK" in text
    assert orig.get_content_type() == "text/rfc822-headers"
    raw = orig.get_payload() if isinstance(orig.get_payload(), str) else \
        orig.as_string()
    assert "Subject: relayed" in raw and "filler line" not in raw
    wait_gone(d, qid)
    d.wait_log(r"id=%s event=relayed recipients=1 dsn=[0-9a-f]{24}" % qid)
    wait_for(lambda: stat(d, "messages.bounced") == 0, 5,
             what="no bounce counted")

    # From <>: nobody to tell.
    qid = send(d.port, message("relayed-null"), sender="",
               rcpt_opts={"bob@example.com": ["NOTIFY=SUCCESS"]})
    sink.wait(2)
    wait_gone(d, qid)
    time.sleep(1)
    assert len(dsn.messages) == 1

def test_ret_hdrs_envid_and_orcpt(smx, servers):
    sink = server(servers, rcpt=lambda a, n: "550 5.2.1 mailbox disabled")
    dsn = server(servers)
    d = start(smx, sink, dsn)
    send(d.port, message("hdrs", 5000), mail_opts=["RET=HDRS",
                                                    "ENVID=client+2Bid42"],
         rcpt_opts={"bob@example.com": ["ORCPT=rfc822;Bob+2B1@Example.COM"]})
    [(msg, per_msg, rcpts, orig)] = dsn_at(dsn)
    assert per_msg["Original-Envelope-Id"] == "client+id42"
    assert rcpts[0]["Original-Recipient"] == "rfc822; Bob+1@Example.COM"
    assert rcpts[0]["Status"] == "5.2.1"
    assert orig.get_content_type() == "text/rfc822-headers"
    raw = orig.get_payload() if isinstance(orig.get_payload(), str) else \
        orig.as_string()
    assert "Subject: hdrs" in raw
    assert "filler line" not in raw and "Hello, this is" not in raw


def mime_parts(raw):
    """[(what, declared encoding, content)] of a DSN as it arrived: the
    DSN itself, then each part, split on the boundary as bytes; an
    encoding not declared is 7bit (RFC 2045 §6.1)."""
    def cte(head):
        m = re.search(rb"(?im)^Content-Transfer-Encoding:[ \t]*(\S+)", head)
        return m.group(1).decode().lower() if m else "7bit"
    head, _, body = raw.partition(b"\r\n\r\n")
    boundary = re.search(rb'boundary="([^"]+)"', head).group(1)
    out = [("dsn", cte(head), body)]
    chunks = body.split(b"--" + boundary)
    assert chunks[-1].startswith(b"--"), chunks[-1][:20]
    for c in chunks[1:-1]:
        h, _, content = c[2:].partition(b"\r\n\r\n")
        ctype = re.search(rb"(?im)^Content-Type:[ \t]*([^;\r\n]+)", h)
        out.append((ctype.group(1).decode(), cte(h), content))
    return out


def check_encodings(raw):
    """Every part holds what it declares; the DSN declares the most
    demanding of its parts; no line is over 998 octets."""
    rank = {"7bit": 0, "8bit": 1, "binary": 2}
    parts = mime_parts(raw)
    for what, enc, content in parts:
        assert enc in rank, (what, enc)
        if enc == "7bit":
            bad = [b for b in content if b > 0x7f]
            assert not bad, "%s declares 7bit, holds %r" % (what, bad[:5])
    assert rank[parts[0][1]] == max(rank[e] for _, e, _ in parts[1:])
    for line in raw.split(b"\r\n"):
        assert len(line) <= 998, line[:100]
    return parts


def test_dsn_parts_declare_their_true_encoding(smx, servers):
    """Issue 18: an 8-bit original was returned in a part that declared
    7bit (none at all)."""
    sink = server(servers, rcpt=lambda a, n: "550 5.1.1 no such user")
    dsn = server(servers)
    d = start(smx, sink, dsn)
    data = ("From: Alice <%s>\r\nTo: <bob@example.com>\r\n"
            "Subject: caf\u00e9\r\n\r\nGr\u00fc\u00dfe, "
            "\u00e5se.\r\n" % SENDER).encode()
    send(d.port, data, mail_opts=["BODY=8BITMIME"])
    [m] = dsn.wait(1)
    parts = check_encodings(m["data"])
    assert [(w, e) for w, e, _ in parts] == [
        ("dsn", "8bit"), ("text/plain", "7bit"),
        ("message/delivery-status", "7bit"), ("message/rfc822", "8bit")]
    assert "Gr\u00fc\u00dfe".encode() in parts[3][2]


def test_smtputf8_dsn_keeps_its_report_ascii(smx, servers):
    sink = server(servers, rcpt=lambda a, n: "550 5.1.1 no such user",
                  enable_SMTPUTF8=True)
    dsn = server(servers, enable_SMTPUTF8=True)
    d = start(smx, sink, dsn)
    send(d.port, message("utf8"), rcpts=("j\u00f6rg@example.com",),
         mail_opts=["SMTPUTF8", "BODY=8BITMIME"])
    [m] = dsn.wait(1)
    parts = check_encodings(m["data"])
    assert [(w, e) for w, e, _ in parts] == [
        ("dsn", "8bit"), ("text/plain", "8bit"),
        ("message/delivery-status", "7bit"), ("message/rfc822", "8bit")]
    # (8bit: our Received header says "for <j\u00f6rg@example.com>".)
    assert "<j\u00f6rg@example.com>".encode() in parts[1][2]
    assert b"Final-Recipient: utf-8; j\\x{F6}rg@example.com\r\n" in \
        parts[2][2]


def unfold(field_and_rest):
    """A header field's value unfolded (RFC 5322 §2.2.3), from bytes
    that start with it."""
    m = re.match(rb"([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", field_and_rest)
    return m.group(1).replace(b"\r\n", b"")


def test_long_multiline_reply_is_folded_in_the_dsn(smx, servers):
    """Issue 18: a 9-line 550 made a 1,015-octet line in the DSN, which
    a strict next hop (splitmx among them) refuses."""
    texts = ["5.1.1 line %d of what this server has to say about that "
             "recipient, at length: %s" % (i, "x" * 40) for i in range(9)]
    texts[4] = "5.1.1 " + "y" * 120          # a word too long for 78
    reply = "\r\n".join("550%s%s" % ("-" if i < 8 else " ", t)
                         for i, t in enumerate(texts))
    sink = server(servers, rcpt=lambda a, n: reply)
    dsn = server(servers)
    d = start(smx, sink, dsn)
    send(d.port, message("long"))
    [m] = dsn.wait(1)
    raw = m["data"]
    parts = check_encodings(raw)
    # Text for people: 78 columns, but for a word longer than that.
    for line in parts[1][2].split(b"\r\n"):
        assert len(line) <= 78 or b" " not in line.strip(), line
    # The relay keeps 1000 octets of a reply, its lines joined by "; ".
    kept = ("550 " + "; ".join(texts))[:1000]
    i = raw.index(b"Diagnostic-Code: ")
    assert unfold(raw[i:]) == ("Diagnostic-Code: smtp; " + kept).encode()
    d.wait_log(r"event=dsn for=")


def test_expiry_sends_a_dsn(smx, servers):
    sink = server(servers, rcpt=lambda a, n: "451 4.3.2 system busy")
    dsn = server(servers)
    d = start(smx, sink, dsn, conf="retry 1s to 2s expire 1m")
    qid = send(d.port, message("expire"))
    d.wait_log(r"id=%s event=deferred" % qid)
    assert d.stop() == 0
    # Make it 57 seconds old: it expires 3 seconds after the restart.
    env = os.path.join(d.queue_dir, "queue", qid + ".env")
    with open(env) as f:
        text = f.read()
    arrival = int(time.time()) - 57
    text = re.sub(r"(?m)^arrival=\d+$", "arrival=%d" % arrival, text)
    with open(env, "w") as f:
        f.write(text)
    before = len(sink.attempts)
    restart(d)
    [(msg, _, rcpts, orig)] = dsn_at(dsn, timeout=30)
    assert rcpts[0]["Action"] == "failed"
    assert rcpts[0]["Status"] == "4.3.2"
    assert "451 4.3.2 system busy" in rcpts[0]["Diagnostic-Code"]
    assert "expired" in msg.get_payload()[0].get_content()
    assert orig.get_content_type() == "message/rfc822"
    wait_gone(d, qid)
    # Tried right after the restart, again until the expiry, not after.
    assert len(sink.attempts) - before >= 2
    last = sink.attempts[-1][0]
    assert re.search(r"id=%s event=failed to=<bob@example.com> "
                     r"reason=\"expired after \d+ attempts\"" % qid, d.log())
    time.sleep(2)
    assert sink.attempts[-1][0] == last


def test_delay_warning_is_sent_once(smx, servers):
    sink = server(servers, rcpt=lambda a, n: "452 4.2.2 mailbox full")
    dsn = server(servers)
    d = start(smx, sink, dsn, conf="retry 1s to 2s expire 1h\n"
              "warn after 2s")
    qid = send(d.port, message("slow", 3000))
    [(msg, _, rcpts, orig)] = dsn_at(dsn, timeout=15)
    assert "Delayed" in msg["Subject"]
    assert rcpts[0]["Action"] == "delayed"
    assert rcpts[0]["Status"] == "4.2.2"
    assert rcpts[0]["Will-Retry-Until"]
    assert orig.get_content_type() == "text/rfc822-headers"
    info = d.ctl_json("show", "message", qid)
    assert info["warned"] > 0
    assert any("warning DSN" in h["text"] for h in info["history"])
    time.sleep(4)
    assert len(dsn.messages) == 1
    # Still queued, still retried.
    assert [i["state"] for i in queue(d) if i["id"] == qid] == ["deferred"]


def test_unknown_bounce_recipient_gets_a_dsn(smx, servers, tmp_path):
    sink = server(servers)
    dsn = server(servers)
    directory = tmp_path / "directory"
    directory.write_text("alice@example.com local\n")
    os.chmod(tmp_path, 0o755)
    os.chmod(directory, 0o644)
    body = ('table people file "%s"\n'
            'domain "example.com" {\n\ttype authoritative\n'
            '\tdirectory people\n\tlocal to "[127.0.0.1]:%d" tls none\n'
            '\tunknown bounce\n}\n'
            'domain "sender.example" {\n\ttype relay\n'
            '\tforward to "[127.0.0.1]:%d" tls none\n}\n'
            % (directory, sink.port, dsn.port))
    d = smx.start(body.replace("{", "{{").replace("}", "}}"))
    qid = send(d.port, message("ghost"),
               rcpts=("alice@example.com", "ghost@example.com"))
    assert sink.wait(1)[0]["rcpts"] == ["alice@example.com"]
    [(_, _, rcpts, _)] = dsn_at(dsn)
    assert rcpts[0]["Final-Recipient"] == "rfc822; ghost@example.com"
    assert rcpts[0]["Status"] == "5.1.1"
    assert "unknown recipient" in rcpts[0]["Diagnostic-Code"]
    assert "Remote-MTA" not in rcpts[0]
    wait_gone(d, qid)
    # ghost never went to the relay.
    assert "ghost@example.com" not in [a for _, a in sink.attempts]


def test_failed_dsn_is_dropped_not_bounced(smx, servers):
    sink = server(servers, rcpt=lambda a, n: "550 5.1.1 no such user")
    dsn = server(servers, rcpt=lambda a, n: "550 5.1.1 no such sender")
    d = start(smx, sink, dsn)
    qid = send(d.port, message("loop"))
    d.wait_log(r"id=(\w+) event=dsn for=%s" % qid)
    dsnid = re.search(r"id=(\w+) event=dsn for=%s" % qid, d.log()).group(1)
    d.wait_log(r"id=%s event=failed to=<%s> .*dropped=yes" % (dsnid, SENDER))
    wait_for(lambda: spool_ids(d) == [], 10, what="an empty spool")
    assert len(re.findall(r"event=dsn for=", d.log())) == 1


# -- the queue verbs ----------------------------------------------------------

def test_pause_and_resume_relay(smx, servers):
    sink = server(servers)
    d = start(smx, sink)
    r = d.ctl("pause", "relay")
    assert r.returncode == 0 and r.stdout == "relay paused\n", r
    qid = send(d.port, message("paused"))
    time.sleep(1.5)
    assert sink.messages == []
    [item] = queue(d)
    assert item["id"] == qid and item["state"] == "queued"
    assert item["tries"] == 0
    assert d.ctl_json("resume", "relay") == {"relay": "running"}
    sink.wait(1)
    wait_gone(d, qid)


def test_schedule_retries_now(smx, servers):
    sink = server(servers, rcpt=lambda a, n: "451 4.7.1 greylisted"
                  if n == 1 else None)
    d = start(smx, sink, conf="retry 10m to 1h expire 1d")
    qid = send(d.port, message("schedule"))
    wait_for(lambda: [i["tries"] for i in queue(d)] == [1], 10,
             what="a first attempt")
    [item] = queue(d)
    assert item["next_try"] > time.time() + 500
    time.sleep(0.5)
    assert sink.messages == []
    r = d.ctl("schedule", qid)
    assert r.returncode == 0 and r.stdout == "scheduled 1 message\n", r
    sink.wait(1, 10)
    wait_gone(d, qid)

    r = d.ctl("schedule", "0123456789abcdef01234567")
    assert r.returncode == 1
    assert "no such message: 0123456789abcdef01234567" in r.stderr
    r = d.ctl("schedule", "../../etc/passwd", json_out=True)
    assert r.returncode == 1 and "no such message" in json.loads(
        r.stdout)["error"]
    assert d.ctl_json("schedule", "all") == {"scheduled": 0}


def test_schedule_all(smx, servers):
    flaky = {"on": True}
    sink = server(servers, rcpt=lambda a, n: "451 4.3.0 later"
                  if flaky["on"] else None)
    d = start(smx, sink, conf="retry 10m to 1h expire 1d")
    ids = [send(d.port, message("all%d" % i)) for i in range(3)]
    wait_for(lambda: sorted(i["tries"] for i in queue(d)) == [1, 1, 1], 10,
             what="first attempts")
    flaky["on"] = False
    r = d.ctl("schedule", "all")
    assert r.stdout == "scheduled 3 messages\n", r
    sink.wait(3, 10)
    for qid in ids:
        wait_gone(d, qid)


def test_remove_deferred_messages(smx, servers):
    sink = server(servers, rcpt=lambda a, n: "451 4.3.0 later")
    dsn = server(servers)
    d = start(smx, sink, dsn, conf="retry 10m to 1h expire 1d")
    ids = [send(d.port, message("rm%d" % i)) for i in range(3)]
    wait_for(lambda: sorted(i["tries"] for i in queue(d)) == [1, 1, 1], 10,
             what="first attempts")
    r = d.ctl("remove", ids[0])
    assert r.returncode == 0 and r.stdout == "removed 1 message\n", r
    assert ids[0] not in spool_ids(d)
    assert sorted(i["id"] for i in queue(d)) == sorted(ids[1:])
    r = d.ctl("remove", ids[0])
    assert r.returncode == 1 and "no such message" in r.stderr
    assert d.ctl_json("remove", "all") == {"removed": 2, "pending": 0}
    assert queue(d) == [] and spool_ids(d) == []
    d.wait_log(r"id=%s event=removed by=operator" % ids[2])
    time.sleep(0.5)
    assert dsn.messages == []


def test_remove_during_delivery_waits_for_the_result(smx, servers):
    sink = server(servers, delay=3.0)
    d = start(smx, sink)
    qid = send(d.port, message("inflight"))
    wait_for(lambda: sink.attempts, 10, what="a delivery under way")
    r = d.ctl("remove", qid)
    assert r.returncode == 0, r
    assert "being delivered" in r.stdout
    info = d.ctl_json("show", "message", qid)
    assert info["removing"] is True and info["deliveries_out"] == 1
    d.wait_log(r"id=%s event=removed by=operator" % qid, timeout=15)
    assert spool_ids(d) == [] and queue(d) == []
    time.sleep(1)
    assert len(sink.attempts) == 1


def test_show_message_history(smx, servers):
    sink = server(servers, rcpt=lambda a, n: "451 4.7.1 greylisted, "
                  "come back later")
    d = start(smx, sink, conf="retry 10m to 1h expire 1d")
    qid = send(d.port, message("history"),
               rcpts=("bob@example.com", "carol@example.com"),
               rcpt_opts={"carol@example.com": [
                   "NOTIFY=FAILURE", "ORCPT=rfc822;carol@example.com"]})
    wait_for(lambda: [i["tries"] for i in queue(d)] == [1, 1], 10,
             what="a first attempt")
    r = d.ctl("show", "message", qid)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    print(out)
    assert out.startswith("message %s\n" % qid)
    assert "from=<%s>" % SENDER in out
    assert re.search(r"^recipient 1 <bob@example.com> state=deferred "
                     r"tries=1 next=in(9|10)m\d+s last=\S+Z route=forward "
                     r"dest=\[127.0.0.1\]:%d notify=default "
                     r'error="451 4.7.1 greylisted, come back later"$'
                     % sink.port, out, re.M), out
    assert re.search(r"^recipient 2 <carol@example.com> .* notify=failure "
                     r"orcpt=rfc822;carol@example.com", out, re.M), out
    # The history's lines are indented; the TLS policies follow it.
    hist = [l for l in out.split("\nhistory\n", 1)[1].splitlines()
            if l.startswith("  ")]
    assert re.match(r"  \S+Z received from 127.0.0.1 size \d+$", hist[0])
    assert re.match(r"  \S+Z routed <bob@example.com> as forward to "
                    r"\[127.0.0.1\]:\d+$", hist[1])
    assert re.match(r'  \S+Z deferred via 127.0.0.1 \[127.0.0.1\] '
                    r'tls=none verified=none: '
                    r'"451 4.7.1 greylisted, come back later" '
                    r'<bob@example.com>, <carol@example.com>$', hist[-1]), hist

    info = d.ctl_json("show", "message", qid)
    assert info["id"] == qid and info["sender"] == SENDER
    assert info["deliveries_out"] == 0 and info["removing"] is False
    assert [x["state"] for x in info["recipients"]] == ["deferred"] * 2
    assert info["recipients"][1]["notify"] == "failure"
    assert info["recipients"][0]["last_error"].startswith("451 4.7.1")
    texts = [h["text"] for h in info["history"]]
    assert texts[0].startswith("received from 127.0.0.1")
    assert any(t.startswith("deferred via") for t in texts)

    r = d.ctl("show", "message", "ffffffffffffffffffffffff")
    assert r.returncode == 1
    assert r.stderr.strip() == "no such message: ffffffffffffffffffffffff"


def test_queue_verbs_need_admin(smx, servers):
    if os.geteuid() != 0:
        pytest.skip("needs root to run splitmxctl as another user")
    sink = server(servers)
    d = start(smx, sink)
    os.chmod(d.control, 0o666)
    for args in (("schedule", "all"), ("remove", "all"),
                 ("pause", "relay"), ("resume", "relay")):
        r = d.ctl(*args, user="nobody")
        assert r.returncode == 1 and "permission denied" in r.stderr, args
    r = d.ctl("show", "message", "ffffffffffffffffffffffff", user="nobody")
    assert "permission denied" not in r.stderr


# -- crash --------------------------------------------------------------------

def test_crash_kill9_during_delivery_loses_nothing(smx, servers):
    """500 queued messages, the relay delivering them, kill -9 of every
    process, restart: all 500 arrive; duplicates are allowed (a crash
    between the remote's 250 and our bookkeeping) and counted."""
    sink = server(servers, delay=0.002)
    d = start(smx, sink, conf="limit sessions-per-ip 100")
    assert d.ctl("pause", "relay").returncode == 0
    bodies = {}
    lock = threading.Lock()

    def sender(k):
        with smtplib.SMTP("127.0.0.1", d.port, timeout=60) as c:
            for i in range(50):
                tag = "crash-%d-%d" % (k, i)
                data = message(tag, 200 + 997 * i)
                c.sendmail(SENDER, ["r%d@example.com" % (i % 7)], data)
                with lock:
                    bodies[tag] = data

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(bodies) == 500 and len(queue(d)) == 500
    assert d.ctl("resume", "relay").returncode == 0
    wait_for(lambda: len(sink.messages) >= 150, 60, what="150 delivered")
    d.kill9()
    before = len(sink.messages)
    restart(d)
    left = len(queue(d))

    def tags():
        out = Counter()
        for m in list(sink.messages):
            tag = re.search(rb"Subject: (\S+)", m["data"]).group(1).decode()
            out[tag] += 1
        return out
    wait_for(lambda: len(tags()) == 500, 120, what="all 500 at the sink")
    wait_for(lambda: queue(d) == [], 30, what="an empty queue")
    got = tags()
    dups = sum(n - 1 for n in got.values())
    print("crash: %d delivered before kill -9, %d left in the queue after "
          "restart, %d received in all, %d unique, %d duplicates"
          % (before, left, len(sink.messages), len(got), dups))
    assert set(got) == set(bodies)
    for m in sink.messages:
        tag = re.search(rb"Subject: (\S+)", m["data"]).group(1).decode()
        assert strip_received(m["data"]) == bodies[tag], tag
    assert spool_ids(d) == []

