"""The SMTP server (SPEC §5, issue 4 items 1-4): every verb and
extension, pipelining, STARTTLS, limits, hostile input and relay access,
against a real splitmxd with real clients (raw sockets, smtplib, swaks).
Accepted messages are checked byte for byte in the queue's files.
"""
import datetime
import email.utils
import glob
import os
import random
import re
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

from conftest import wait_for

# STARTTLS offered; example.com is a relay domain (conftest adds it).
TLS_BODY = """
pki mx1 cert "{cert}" key "{key}"
listen on 127.0.0.1 port {port} tls pki mx1
"""

SMUGGLING = [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n"]


class Client:
    """Raw SMTP: exact bytes out, whole (multi-line) replies in."""

    def __init__(self, port, banner=True, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=timeout)
        self.buf = b""
        self.banner = self.reply() if banner else None

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _line(self):
        while b"\r\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise EOFError("closed; unparsed: %r" % self.buf)
            self.buf += d
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def reply(self):
        """(code, text): text is every line's text joined by newlines."""
        lines = []
        while True:
            line = self._line()
            lines.append(line)
            if line[3:4] != "-":
                break
        return int(lines[0][:3]), "\n".join(ln[4:] for ln in lines)

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def ok(self, line, code=250):
        c, text = self.cmd(line)
        assert c == code, "%s -> %d %s" % (line, c, text)
        return text

    def ehlo(self, name="client.example"):
        return self.ok("EHLO " + name)

    def starttls(self):
        self.ok("STARTTLS", 220)
        assert self.buf == b""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(self.sock)

    def closed(self, timeout=5):
        """True once the server has closed (after anything pending)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                d = self.sock.recv(65536)
                if not d:
                    return True
                self.buf += d
        except (ConnectionResetError, socket.timeout):
            return False

    def close(self):
        self.sock.close()


def send_message(c, body, sender="a@sender.org", rcpts=("x@example.com",)):
    """MAIL, RCPT..., DATA with body (bytes, CRLF terminator added)."""
    c.ok("MAIL FROM:<%s>" % sender)
    for r in rcpts:
        c.ok("RCPT TO:<%s>" % r)
    c.ok("DATA", 354)
    c.send(body + b"\r\n.\r\n")
    return c.reply()


def queue_id(text):
    m = re.search(r"queued as ([0-9A-Za-z]+)", text)
    assert m, text
    return m.group(1)


def queued_files(d):
    """Files in the spool that hold a message (they start with ours)."""
    out = {}
    for p in glob.glob(os.path.join(d.queue_dir, "**", "*"), recursive=True):
        if not os.path.isfile(p):
            continue
        try:
            with open(p, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            continue    # rolled back or moved while we looked
        # A committed message file: the message, then its envelope and
        # a trailer "envelope=<offset>\n" (queue/queue_fs.c).
        m = re.search(rb"envelope=(\d{20})\n\Z", data)
        if m and p.endswith(".msg"):
            data = data[:int(m.group(1))]
        if data.startswith(b"Received: "):
            out[p] = data
    return out


def queued(d, qid):
    """The bytes of the committed message qid."""
    def find():
        for p, data in queued_files(d).items():
            if qid in os.path.basename(p):
                return data
        return None
    return wait_for(find, 5, what="message %s in the queue" % qid)


def split_received(data):
    """(our Received header, the rest) of a queued message."""
    m = re.match(rb"Received: .*?;\r\n\t[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} "
                 rb"\d{4} \d\d:\d\d:\d\d [+-]\d{4}\r\n", data, re.S)
    assert m, data[:300]
    return m.group(0), data[m.end():]


def nothing_queued(d):
    wait_for(lambda: not queued_files(d), 5, what="an empty spool")
    assert "event=message " not in d.log()


def counter(d, name):
    return d.status_json()[name]


@pytest.fixture
def mx(smx):
    return smx.start(TLS_BODY)


# --- greeting and verbs ------------------------------------------------

def test_banner_comes_after_a_short_silence(mx):
    t = time.monotonic()
    c = Client(mx.port)
    assert time.monotonic() - t >= 0.4
    assert c.banner[0] == 220
    assert c.banner[1].startswith("mx.test.example ESMTP")


def test_trusted_client_gets_the_banner_at_once(smx):
    d = smx.start("trusted 127.0.0.0/8")
    t = time.monotonic()
    c = Client(d.port)
    assert time.monotonic() - t < 0.3
    assert c.banner[0] == 220


def test_ehlo_advertises_every_extension(smx):
    d = smx.start(TLS_BODY + "limit message-size 10M\n")
    c = Client(d.port)
    text = c.ehlo()
    lines = text.split("\n")
    assert lines[0].startswith("mx.test.example Hello client.example "
                               "[127.0.0.1]")
    for ext in ["PIPELINING", "SIZE 10485760", "8BITMIME",
                "ENHANCEDSTATUSCODES", "STARTTLS", "SMTPUTF8", "DSN",
                "CHUNKING"]:
        assert ext in lines[1:], (ext, lines)


def test_no_starttls_where_not_configured(smx):
    d = smx.start()
    c = Client(d.port)
    assert "STARTTLS" not in c.ehlo().split("\n")
    assert c.cmd("STARTTLS")[0] == 502


def test_helo_message_is_received_with_smtp(mx):
    c = Client(mx.port)
    assert c.ok("HELO client.example").startswith("mx.test.example Hello")
    code, text = send_message(c, b"Subject: helo\r\n\r\nhi")
    assert code == 250
    hdr, _ = split_received(queued(mx, queue_id(text)))
    assert b" with SMTP id " in hdr


def test_greeting_needs_a_hostname(mx):
    c = Client(mx.port)
    assert c.cmd("EHLO")[0] == 501
    assert c.cmd("HELO")[0] == 501
    code, text = c.cmd("EHLO bad(host)")
    assert code == 501 and text.startswith("5.5.4")


def test_commands_out_of_sequence_are_503(mx):
    c = Client(mx.port)
    code, text = c.cmd("MAIL FROM:<a@sender.org>")
    assert (code, text[:5]) == (503, "5.5.1")
    c.ehlo()
    assert c.cmd("RCPT TO:<x@example.com>")[0] == 503
    assert c.cmd("DATA")[0] == 503
    c.ok("MAIL FROM:<a@sender.org>")
    code, text = c.cmd("MAIL FROM:<a@sender.org>")
    assert code == 503 and "nested" in text
    # MAIL given, every recipient refused: nothing to send to.
    assert c.cmd("DATA")[0] == 554


def test_smtplib_message_is_queued_byte_exact(mx):
    body = (b"From: a@sender.org\r\nTo: x@example.com\r\nSubject: exact\r\n"
            b"\r\nline one\r\n\r\n  indented\r\nlast line\r\n")
    with smtplib.SMTP("127.0.0.1", mx.port,
                      local_hostname="client.example") as s:
        s.ehlo()
        s.mail("a@sender.org")
        assert s.rcpt("x@example.com")[0] == 250
        code, resp = s.data(body)
    assert code == 250
    assert resp.startswith(b"2.0.0 Ok: queued as ")
    hdr, rest = split_received(queued(mx, queue_id(resp.decode())))
    assert rest == body


def test_received_header_records_the_transaction(mx):
    c = Client(mx.port)
    c.ehlo("client.example")
    code, text = send_message(c, b"Subject: r\r\n\r\nx")
    qid = queue_id(text)
    hdr, _ = split_received(queued(mx, qid))
    hdr = hdr.decode()
    assert hdr.startswith("Received: from client.example ([127.0.0.1])")
    assert "by mx.test.example (splitmx) with ESMTP id %s" % qid in hdr
    assert "for <x@example.com>;" in hdr
    date = hdr.rsplit(";", 1)[1].strip()
    when = email.utils.parsedate_to_datetime(date)
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - when).total_seconds()) < 60
    for line in hdr.split("\r\n")[1:-1]:
        assert line.startswith("\t")


def test_received_has_no_for_with_two_recipients(mx):
    c = Client(mx.port)
    c.ehlo()
    code, text = send_message(c, b"Subject: two\r\n\r\nx",
                              rcpts=("x@example.com", "y@example.com"))
    hdr, _ = split_received(queued(mx, queue_id(text)))
    assert b" for <" not in hdr


def test_dot_unstuffing(mx):
    c = Client(mx.port)
    c.ehlo()
    code, text = send_message(c, b"Subject: dots\r\n\r\n..one\r\n...\r\n"
                              b".x.\r\n. \r\nend")
    assert code == 250
    _, rest = split_received(queued(mx, queue_id(text)))
    assert rest == b"Subject: dots\r\n\r\n.one\r\n..\r\nx.\r\n \r\nend\r\n"


def test_null_sender_is_accepted(mx):
    c = Client(mx.port)
    c.ehlo()
    code, text = send_message(c, b"Subject: bounce\r\n\r\nx", sender="")
    assert code == 250
    assert re.search(r"event=message id=%s from=<> " % queue_id(text),
                     mx.log())


def test_rset_forgets_the_transaction(mx):
    c = Client(mx.port)
    c.ehlo()
    c.ok("MAIL FROM:<a@sender.org>")
    c.ok("RCPT TO:<x@example.com>")
    c.ok("RSET")
    assert c.cmd("RCPT TO:<x@example.com>")[0] == 503
    assert c.cmd("RSET junk")[0] == 501


def test_noop_vrfy_expn_help(mx):
    c = Client(mx.port)
    assert c.cmd("NOOP")[0] == 250
    assert c.cmd("noop whatever")[0] == 250
    code, text = c.cmd("VRFY alice@example.com")
    assert code == 252 and text.startswith("2.")
    assert c.cmd("VRFY")[0] == 501
    assert c.cmd("EXPN staff")[0] == 502
    code, text = c.cmd("HELP")
    assert code == 214 and "BDAT" in text and len(text.split("\n")) > 1


def test_quit_says_221_and_closes(mx):
    c = Client(mx.port)
    code, text = c.cmd("QUIT")
    assert code == 221 and text.startswith("2.0.0")
    assert c.closed()


def test_unknown_command_is_500(mx):
    c = Client(mx.port)
    code, text = c.cmd("FROBNICATE now")
    assert (code, text[:5]) == (500, "5.5.2")
    assert c.cmd("NOOP")[0] == 250


# --- pipelining --------------------------------------------------------

def test_pipelined_packet_answered_in_one_write(mx):
    c = Client(mx.port)
    c.send(b"EHLO client.example\r\nMAIL FROM:<a@sender.org>\r\n"
           b"RCPT TO:<x@example.com>\r\nRCPT TO:<y@example.com>\r\n"
           b"DATA\r\n")
    first = c.sock.recv(65536)
    # One read returned every reply through the 354: written at once.
    assert first.endswith(b"354 End data with <CR><LF>.<CR><LF>\r\n"), first
    codes = [int(ln[:3]) for ln in first.split(b"\r\n")
             if ln and ln[3:4] == b" "]
    assert codes == [250, 250, 250, 250, 354]
    c.send(b"Subject: p\r\n\r\nbody\r\n.\r\nNOOP\r\nQUIT\r\n")
    assert c.reply()[0] == 250
    assert c.reply()[0] == 250
    assert c.reply()[0] == 221


def test_pipelined_replies_keep_order_with_rejections(mx):
    c = Client(mx.port)
    c.ehlo()
    c.send(b"MAIL FROM:<a@sender.org>\r\nRCPT TO:<x@example.com>\r\n"
           b"RCPT TO:<x@stranger.org>\r\nRCPT TO:<y@example.com>\r\n"
           b"NOOP\r\nDATA\r\n")
    got = [c.reply() for _ in range(6)]
    assert [g[0] for g in got] == [250, 250, 550, 250, 250, 354]
    assert got[2][1].startswith("5.7.1")
    c.send(b"x\r\n.\r\n")
    assert c.reply()[0] == 250


# --- MAIL and RCPT parameters -------------------------------------------

def test_size_parameter_over_the_limit_is_552(smx):
    d = smx.start(TLS_BODY + "limit message-size 10K\n")
    c = Client(d.port)
    c.ehlo()
    code, text = c.cmd("MAIL FROM:<a@sender.org> SIZE=20000")
    assert (code, text[:5]) == (552, "5.3.4")
    c.ok("MAIL FROM:<a@sender.org> SIZE=1000")
    c.ok("RSET")
    assert c.cmd("MAIL FROM:<a@sender.org> SIZE=12k")[0] == 501


def test_message_over_the_size_limit_is_552_and_dropped(smx):
    d = smx.start(TLS_BODY + "limit message-size 10K\n")
    c = Client(d.port)
    c.ehlo()
    code, text = send_message(c, b"Subject: big\r\n\r\n" +
                              (b"x" * 70 + b"\r\n") * 300)
    assert (code, text[:5]) == (552, "5.3.4")
    nothing_queued(d)
    assert "reason=size" in d.log()
    # The session goes on.
    code, text = send_message(c, b"Subject: small\r\n\r\nok")
    assert code == 250


def test_body_types(mx):
    c = Client(mx.port)
    c.ehlo()
    c.ok("MAIL FROM:<a@sender.org> BODY=8BITMIME")
    c.ok("RCPT TO:<x@example.com>")
    c.ok("DATA", 354)
    c.send("Subject: 8bit\r\n\r\nGrüße\r\n.\r\n")
    code, text = c.reply()
    assert code == 250
    _, rest = split_received(queued(mx, queue_id(text)))
    assert "Grüße".encode() in rest
    c.ok("MAIL FROM:<a@sender.org> BODY=7BIT")
    c.ok("RSET")
    assert c.cmd("MAIL FROM:<a@sender.org> BODY=BINARYMIME")[0] == 501


def test_smtputf8_addresses_need_the_parameter(mx):
    c = Client(mx.port)
    c.ehlo()
    code, text = c.cmd("MAIL FROM:<jörg@sender.org>")
    assert (code, text[:5]) == (553, "5.6.7")
    c.ok("MAIL FROM:<jörg@sender.org> SMTPUTF8")
    c.ok("RCPT TO:<åse@example.com>")
    c.ok("DATA", 354)
    c.send("Subject: utf8\r\n\r\nhej\r\n.\r\n")
    code, text = c.reply()
    assert code == 250
    hdr, _ = split_received(queued(mx, queue_id(text)))
    assert b" with UTF8SMTP id " in hdr
    assert "for <åse@example.com>".encode() in hdr
    # Malformed UTF-8 is a syntax error even with SMTPUTF8.
    c.send(b"MAIL FROM:<\xc3\x28@sender.org> SMTPUTF8\r\n")
    assert c.reply()[0] == 501


def test_dsn_parameters(mx):
    c = Client(mx.port)
    c.ehlo()
    c.ok("MAIL FROM:<a@sender.org> RET=HDRS ENVID=QQ+2B1")
    c.ok("RCPT TO:<x@example.com> NOTIFY=SUCCESS,FAILURE "
         "ORCPT=rfc822;x@example.com")
    c.ok("RCPT TO:<y@example.com> NOTIFY=NEVER")
    assert c.cmd("RCPT TO:<z@example.com> NOTIFY=NEVER,DELAY")[0] == 501
    assert c.cmd("RCPT TO:<z@example.com> ORCPT=nosemicolon")[0] == 501
    c.ok("DATA", 354)
    c.send(b"Subject: dsn\r\n\r\nx\r\n.\r\n")
    assert c.reply()[0] == 250
    assert c.cmd("MAIL FROM:<a@sender.org> RET=SOME")[0] == 501
    assert c.cmd("MAIL FROM:<a@sender.org> ENVID=a=b")[0] == 501


def test_unknown_or_repeated_parameter(mx):
    c = Client(mx.port)
    c.ehlo()
    code, text = c.cmd("MAIL FROM:<a@sender.org> AUTH=<>")
    assert (code, text[:5]) == (555, "5.5.4")
    assert c.cmd("MAIL FROM:<a@sender.org> SIZE=1 SIZE=2")[0] == 501
    assert c.cmd("MAIL FROM:<a@sender.org>SIZE=1")[0] == 501


def test_recipient_limit_is_452(smx):
    d = smx.start(TLS_BODY + "limit recipients 2\n")
    c = Client(d.port)
    c.ehlo()
    c.ok("MAIL FROM:<a@sender.org>")
    c.ok("RCPT TO:<x@example.com>")
    c.ok("RCPT TO:<y@example.com>")
    code, text = c.cmd("RCPT TO:<z@example.com>")
    assert (code, text[:5]) == (452, "4.5.3")
    c.ok("DATA", 354)
    c.send(b"Subject: 2\r\n\r\nx\r\n.\r\n")
    code, text = c.reply()
    assert code == 250
    assert re.search(r"event=message id=%s .* rcpts=2" % queue_id(text),
                     d.log())


def test_bad_address_syntax(smx):
    mx = smx.start(TLS_BODY + "limit errors 100\n")
    c = Client(mx.port)
    c.ehlo()
    code, text = c.cmd("MAIL FROM:<no-at-sign>")
    assert (code, text[:5]) == (501, "5.1.7")
    assert c.cmd("MAIL FROM:a@sender.org")[0] == 501
    c.ok("MAIL FROM:<@relay.example:a@sender.org>")  # source route ignored
    for bad in ["<a b@example.com>", "<@example.com>", "<x@>",
                "<x@exa mple.com>", "<x..y@example.com>", "<>",
                "<x@-bad.example.com>", "<x@[1.2.3]>"]:
        code, text = c.cmd("RCPT TO:" + bad)
        assert (code, text[:5]) == (501, "5.1.3"), bad
    code, text = c.cmd("RCPT TO:<%s@example.com>" % ("l" * 65))
    assert (code, text[:5]) == (553, "5.1.3")
    c.ok("RCPT TO:<%s@example.com>" % ("l" * 64))
    c.ok('RCPT TO:<"quoted local"@example.com>')
    c.ok("RCPT TO:<postmaster@example.com>")


# --- CHUNKING ----------------------------------------------------------

def test_bdat_chunks_make_one_message(mx):
    c = Client(mx.port)
    c.ehlo()
    c.ok("MAIL FROM:<a@sender.org>")
    c.ok("RCPT TO:<x@example.com>")
    part1 = b"Subject: chunks\r\n\r\nfirst "
    part2 = b"second\r\nthird line\r\n"
    c.send(b"BDAT %d\r\n" % len(part1) + part1)
    code, text = c.reply()
    assert code == 250 and "%d octets" % len(part1) in text
    c.send(b"BDAT %d LAST\r\n" % len(part2) + part2)
    code, text = c.reply()
    assert code == 250
    _, rest = split_received(queued(mx, queue_id(text)))
    assert rest == part1 + part2


def test_bdat_0_last_ends_the_message(mx):
    c = Client(mx.port)
    c.ehlo()
    c.ok("MAIL FROM:<a@sender.org>")
    c.ok("RCPT TO:<x@example.com>")
    body = b"Subject: z\r\n\r\nno final newline"
    c.send(b"BDAT %d\r\n" % len(body) + body + b"BDAT 0 LAST\r\n")
    assert c.reply()[0] == 250
    code, text = c.reply()
    assert code == 250
    _, rest = split_received(queued(mx, queue_id(text)))
    assert rest == body + b"\r\n"
    # DATA may not join a BDAT transaction.
    c.ok("MAIL FROM:<a@sender.org>")
    c.ok("RCPT TO:<x@example.com>")
    c.send(b"BDAT 3\r\nabc")
    assert c.reply()[0] == 250
    assert c.cmd("DATA")[0] == 503


def test_bdat_chunk_is_read_even_when_refused(mx):
    c = Client(mx.port)
    c.ehlo()
    # The chunk holds commands: they must be eaten as data, not run.
    chunk = b"QUIT\r\n"
    c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
    code, text = c.reply()
    assert (code, text[:5]) == (503, "5.5.1")
    assert c.cmd("NOOP")[0] == 250


def test_bdat_bad_size_closes_the_connection(mx):
    c = Client(mx.port)
    c.ehlo()
    c.ok("MAIL FROM:<a@sender.org>")
    c.ok("RCPT TO:<x@example.com>")
    assert c.cmd("BDAT lots")[0] == 501
    assert c.closed()


# --- STARTTLS ----------------------------------------------------------

def test_starttls_with_smtplib_records_tls_in_received(mx):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", mx.port,
                      local_hostname="client.example") as s:
        s.ehlo()
        assert s.has_extn("starttls")
        s.starttls(context=ctx)
        s.ehlo()
        assert not s.has_extn("starttls")
        s.mail("a@sender.org")
        s.rcpt("x@example.com")
        code, resp = s.data(b"Subject: tls\r\n\r\nsecret\r\n")
    assert code == 250
    hdr, _ = split_received(queued(mx, queue_id(resp.decode())))
    assert b" with ESMTPS id " in hdr
    assert re.search(rb"\(version=TLSv1\.[23] cipher=[A-Z0-9_-]+\)", hdr)
    assert re.search(r"event=starttls version=TLSv1\.[23]", mx.log())


def test_commands_pipelined_after_starttls_are_discarded(mx):
    c = Client(mx.port)
    c.ehlo()
    c.send(b"STARTTLS\r\nMAIL FROM:<evil@attacker.org>\r\n"
           b"RCPT TO:<x@example.com>\r\n")
    code, _ = c.reply()
    assert code == 220
    assert c.buf == b""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c.sock = ctx.wrap_socket(c.sock)
    # The state after TLS is fresh: no greeting, no transaction.
    assert c.cmd("RCPT TO:<x@example.com>")[0] == 503
    c.ehlo()
    code, text = c.cmd("RCPT TO:<x@example.com>")
    assert code == 503 and "MAIL" in text
    assert "event=starttls-discard" in mx.log()


def test_tls_require_refuses_mail_before_starttls(smx):
    d = smx.start('pki mx1 cert "{cert}" key "{key}"\n'
                  "listen on 127.0.0.1 port {port} tls-require pki mx1\n")
    c = Client(d.port)
    assert "STARTTLS" in c.ehlo().split("\n")
    code, text = c.cmd("MAIL FROM:<a@sender.org>")
    assert (code, text[:5]) == (530, "5.7.0")
    c.starttls()
    c.ehlo()
    code, text = send_message(c, b"Subject: required\r\n\r\nx")
    assert code == 250


def test_swaks_over_tls(mx):
    r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % mx.port,
                        "--tls", "--from", "a@sender.org",
                        "--to", "x@example.com", "--helo", "swaks.example",
                        "--timeout", "20"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "queued as" in r.stdout


def test_swaks_pipelining(mx):
    r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % mx.port,
                        "--pipeline", "--from", "a@sender.org",
                        "--to", "x@example.com,y@example.com",
                        "--timeout", "20"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "queued as" in r.stdout


# --- limits and hostile input -------------------------------------------

def test_command_line_over_512_octets_is_500(mx):
    c = Client(mx.port)
    code, text = c.cmd("NOOP " + "x" * 600)
    assert (code, text[:5]) == (500, "5.5.2")
    # A line longer than any buffer: one reply, the session goes on.
    c.send(b"y" * 20000 + b"\r\n")
    code, text = c.reply()
    assert code == 500 and "too long" in text
    assert c.cmd("NOOP")[0] == 250


def test_mail_and_rcpt_lines_get_the_dsn_allowance(mx):
    c = Client(mx.port)
    c.ehlo()
    c.ok("MAIL FROM:<a@sender.org> ENVID=" + "e" * 100)
    orcpt = "rfc822;" + "o" * 480 + "@example.com"
    line = "RCPT TO:<x@example.com> ORCPT=" + orcpt
    assert len(line) + 2 > 512
    c.ok(line)
    code, _ = c.cmd("RCPT TO:<x@example.com> ORCPT=rfc822;" + "o" * 1100)
    assert code == 500


def test_data_line_over_1000_octets_is_refused(mx):
    c = Client(mx.port)
    c.ehlo()
    code, text = send_message(c, b"Subject: long\r\n\r\n" + b"l" * 1500)
    assert (code, text[:5]) == (550, "5.6.0")
    nothing_queued(mx)
    # 998 octets is the longest line there may be.
    code, text = send_message(c, b"Subject: long\r\n\r\n" + b"l" * 998)
    assert code == 250


def test_nul_in_command_is_500(mx):
    c = Client(mx.port)
    c.send(b"NOOP \x00 x\r\n")
    code, text = c.reply()
    assert code == 500 and "NUL" in text
    c.send(b"NOOP\rNOOP\r\n")
    assert c.reply()[0] == 500


def test_nul_in_data_is_refused(mx):
    c = Client(mx.port)
    c.ehlo()
    code, text = send_message(c, b"Subject: nul\r\n\r\na\x00b")
    assert (code, text[:5]) == (550, "5.6.0")
    nothing_queued(mx)


def test_command_before_the_banner_is_554(mx):
    c = Client(mx.port, banner=False)
    c.send(b"EHLO eager.example\r\n")
    code, text = c.reply()
    assert (code, text[:5]) == (554, "5.5.0")
    assert c.closed()
    assert "event=early-talker" in mx.log()


def test_too_many_errors_close_with_421(smx):
    d = smx.start(TLS_BODY + "limit errors 3\n")
    c = Client(d.port)
    assert c.cmd("BOGUS1")[0] == 500
    assert c.cmd("BOGUS2")[0] == 500
    assert c.cmd("BOGUS3")[0] == 500
    code, text = c.reply()
    assert (code, text[:5]) == (421, "4.7.0")
    assert c.closed()


def test_idle_timeout_is_421(smx):
    d = smx.start(TLS_BODY + "timeout command 1s\n")
    c = Client(d.port)
    c.ehlo()
    time.sleep(1.5)
    code, text = c.reply()
    assert (code, text[:5]) == (421, "4.4.2")
    assert c.closed()


def test_data_timeout_is_421_and_drops_the_message(smx):
    d = smx.start(TLS_BODY + "timeout data 1s\n")
    c = Client(d.port)
    c.ehlo()
    c.ok("MAIL FROM:<a@sender.org>")
    c.ok("RCPT TO:<x@example.com>")
    c.ok("DATA", 354)
    c.send(b"Subject: slow\r\n\r\nhalf a li")
    time.sleep(1.5)
    code, text = c.reply()
    assert (code, text[:5]) == (421, "4.4.2")
    assert c.closed()
    nothing_queued(d)


def no_sessions(d):
    """The probe conftest made while starting d has come and gone."""
    def done():
        log = d.log()
        n = log.count("event=connect ")
        return n >= 1 and n == log.count("event=disconnect ")
    wait_for(done, 5, what="no sessions")


def test_session_limit_is_421(smx):
    d = smx.start(TLS_BODY + "limit sessions 2\n")
    no_sessions(d)
    a, b = Client(d.port), Client(d.port)
    c = Client(d.port)
    assert c.banner[0] == 421 and c.banner[1].startswith("4.7.0")
    assert c.closed()
    a.cmd("QUIT")
    assert a.closed()
    wait_for(lambda: Client(d.port).banner[0] == 220, 5,
             what="a free session slot")
    assert b.cmd("NOOP")[0] == 250


def test_session_limit_past_the_descriptors_is_said(smx):
    """A session can hold two descriptors (its socket, its message
    file): a limit the smtp process cannot hold is logged at start,
    with what it would need and what it has."""
    d = smx.start(TLS_BODY + "limit sessions 100000\n")
    m = d.wait_log(r"smtp: limit sessions 100000 needs up to 200064 "
                   r"descriptors, the smtp process may have (\d+)")
    assert int(m.group(1)) < 200064
    assert Client(d.port).banner[0] == 220


def test_sessions_per_ip_limit_is_421(smx):
    d = smx.start(TLS_BODY + "limit sessions-per-ip 1\n")
    no_sessions(d)
    a = Client(d.port)
    c = Client(d.port)
    assert c.banner[0] == 421 and c.banner[1].startswith("4.7.0"), d.log()
    d.wait_log(r"event=refused client=127\.0\.0\.1 limit=sessions-per-ip")
    assert a.cmd("NOOP")[0] == 250


@pytest.mark.parametrize("dot", SMUGGLING,
                         ids=["lf-dot-lf", "cr-dot-cr", "lf-dot-crlf",
                              "crlf-dot-lf"])
def test_smuggling_variant_does_not_end_data(mx, dot):
    c = Client(mx.port)
    c.ehlo()
    c.ok("MAIL FROM:<a@sender.org>")
    c.ok("RCPT TO:<x@example.com>")
    c.ok("DATA", 354)
    c.send(b"Subject: smuggle\r\n\r\nhello" + dot +
           b"MAIL FROM:<admin@example.com>\r\nRCPT TO:<y@example.com>\r\n"
           b"DATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n")
    # One reply, for the whole thing, which is refused.
    code, text = c.reply()
    assert (code, text[:5]) == (550, "5.6.0")
    assert c.cmd("NOOP")[0] == 250
    nothing_queued(mx)
    assert "RCPT TO:<y@example.com>" not in mx.log()


def test_bare_lf_line_ends_are_refused(mx):
    c = Client(mx.port)
    c.ehlo()
    code, text = send_message(c, b"Subject: lf\n\nunix\nlines\n")
    assert (code, text[:5]) == (550, "5.6.0")
    assert "reason=bare-line-end" in mx.log()


def test_hop_limit(mx):
    c = Client(mx.port)
    c.ehlo()
    hops = b"".join(b"Received: from hop%d.example by x; "
                    b"Thu, 1 Jan 2025 00:00:00 +0000\r\n" % i
                    for i in range(101))
    code, text = send_message(c, hops + b"Subject: loop\r\n\r\nx")
    assert (code, text[:5]) == (554, "5.4.6")
    # A hundred is still fine, and Received: in the body does not count.
    hundred = hops.split(b"\r\n", 1)[1]
    code, text = send_message(c, hundred + b"Subject: ok\r\n\r\n" + hops)
    assert code == 250


def send_in_pieces(c, data, rnd, sizes):
    """data in writes of random sizes (from sizes)."""
    i = 0
    while i < len(data):
        n = rnd.choice(sizes)
        c.send(data[i:i + n])
        i += n


def dot_stuffed(lines):
    """DATA text of lines (without CRLF), up to and with the final dot."""
    return b"".join((b"." if ln.startswith(b".") else b"") + ln + b"\r\n"
                    for ln in lines) + b".\r\n"


def test_random_bodies_in_random_pieces_arrive_byte_exact(mx):
    """Dots, long lines, 8-bit text; DATA or BDAT in random chunks; every
    write split at random points: each message is queued exactly."""
    rnd = random.Random(4)

    def pieces(c, data):
        send_in_pieces(c, data, rnd, [1, 2, 3, 7, 100, 1000, 5000])

    c = Client(mx.port)
    c.ehlo()
    for _ in range(30):
        lines = []
        for _ in range(rnd.randint(0, 60)):
            k = rnd.random()
            if k < 0.2:
                ln = b"." + bytes(rnd.choice(b"ab.") for _ in range(
                    rnd.randint(0, 4)))
            elif k < 0.25:
                ln = b"x" * rnd.randint(990, 998)
            else:
                ln = bytes(rnd.choice(b"abc \t:.\xc3\xa9") for _ in range(
                    rnd.randint(0, 80)))
            lines.append(ln)
        content = b"".join(ln + b"\r\n" for ln in lines)
        c.ok("MAIL FROM:<a@sender.org>")
        c.ok("RCPT TO:<x@example.com>")
        if rnd.random() < 0.5:
            c.ok("DATA", 354)
            pieces(c, dot_stuffed(lines))
            code, text = c.reply()
        else:
            pos = 0
            while True:
                n = rnd.randint(0, len(content) - pos)
                last = pos + n == len(content) and rnd.random() < 0.7
                c.send(b"BDAT %d%s\r\n" % (n, b" LAST" if last else b""))
                pieces(c, content[pos:pos + n])
                pos += n
                code, text = c.reply()
                if last:
                    break
                assert code == 250
        assert code == 250, text
        _, rest = split_received(queued(mx, queue_id(text)))
        assert rest == content



def test_bad_octets_in_random_pieces_are_found(mx):
    """The checks of NUL, bare CR or LF and line length hold wherever
    the client's writes split the text: a message with one bad octet or
    one over-long line, in DATA or BDAT cut at random points, is refused
    with the reason of the worst fault; a good one is queued exactly."""
    rnd = random.Random(7)

    def pieces(c, data):
        send_in_pieces(c, data, rnd, [1, 2, 3, 5, 64, 999, 4096, 20000])

    c = Client(mx.port)
    c.ehlo()
    for _ in range(60):
        lines = [b"Subject: bad octets", b""]
        lines += [bytes(rnd.choice(b"ab. ") for _ in range(
            rnd.randint(0, 70))) for _ in range(rnd.randint(1, 300))]
        fault = rnd.choice([None, None, b"\x00", b"\r", b"\n", b"long"])
        if fault is not None:
            k = rnd.randrange(2, len(lines))
            if fault == b"long":
                lines[k] = b"y" * rnd.randint(999, 1500)
            else:
                at = rnd.randint(0, len(lines[k]))
                lines[k] = lines[k][:at] + fault + lines[k][at:]
        content = b"".join(ln + b"\r\n" for ln in lines)
        c.ok("MAIL FROM:<a@sender.org>")
        c.ok("RCPT TO:<x@example.com>")
        if rnd.random() < 0.6:
            c.ok("DATA", 354)
            pieces(c, dot_stuffed(lines))
        else:
            c.send(b"BDAT %d LAST\r\n" % len(content))
            pieces(c, content)
        code, text = c.reply()
        if fault is None:
            assert code == 250, text
            _, rest = split_received(queued(mx, queue_id(text)))
            assert rest == content
            continue
        assert (code, text[:5]) == (550, "5.6.0"), (fault, text)
        want = {b"\x00": "NUL", b"\r": "bare CR or LF",
                b"\n": "bare CR or LF", b"long": "longer than 998"}[fault]
        assert want in text, (fault, text)
    assert c.cmd("NOOP")[0] == 250

# --- relay access -------------------------------------------------------

def test_stranger_may_not_relay_550_571(mx):
    c = Client(mx.port)
    c.ehlo()
    c.ok("MAIL FROM:<a@sender.org>")
    code, text = c.cmd("RCPT TO:<victim@elsewhere.org>")
    assert (code, text) == (550, "5.7.1 Relaying denied")
    assert re.search(r"event=rcpt-rejected .*to=<victim@elsewhere.org>",
                     mx.log())
    wait_for(lambda: counter(mx, "recipients.rejected") >= 1, 5,
             what="recipients.rejected")


def test_trusted_client_may_relay(smx):
    d = smx.start(TLS_BODY + "trusted 127.0.0.0/8\n")
    c = Client(d.port)
    c.ehlo()
    code, text = send_message(c, b"Subject: out\r\n\r\nx",
                              rcpts=("someone@elsewhere.org",))
    assert code == 250
    assert re.search(r"event=rcpt id=%s to=<someone@elsewhere.org> "
                     r"route=outbound" % queue_id(text), d.log())


def test_domains_match_case_insensitively_and_by_subdomain(smx):
    d = smx.start(TLS_BODY +
                  'domain "example.com" {{\n\ttype relay\n'
                  '\tforward to "[127.0.0.1]:9"\n}}\n'
                  'domain ".sub.example" {{\n\ttype relay\n'
                  '\tforward to "[127.0.0.1]:9"\n}}\n')
    c = Client(d.port)
    c.ehlo()
    c.ok("MAIL FROM:<a@sender.org>")
    c.ok("RCPT TO:<x@EXAMPLE.Com>")
    c.ok("RCPT TO:<x@deep.a.sub.example>")
    c.ok("RCPT TO:<x@sub.example>")
    assert c.cmd("RCPT TO:<x@notsub.example>")[0] == 550


# --- accounting, logs, reload --------------------------------------------

def test_counters_and_log_lines(mx):
    c = Client(mx.port)
    c.ehlo()
    code, text = send_message(c, b"Subject: count\r\n\r\nx")
    qid = queue_id(text)
    wait_for(lambda: counter(mx, "messages.accepted") >= 1, 5,
             what="messages.accepted")
    st = mx.status_json()
    assert st["sessions.total"] >= 1
    assert st["sessions.active"] >= 1
    log = mx.log()
    assert re.search(r"session=[0-9a-f]{16} event=connect client=127.0.0.1 ",
                     log)
    m = re.search(r"event=message id=%s from=<a@sender.org> size=(\d+) "
                  r"rcpts=1" % qid, log)
    assert m and int(m.group(1)) == len(queued(mx, qid))
    c.cmd("QUIT")
    assert c.closed()
    wait_for(lambda: counter(mx, "sessions.active") == 0, 5,
             what="sessions.active back to 0")


def test_session_keeps_its_configuration_across_reload(smx):
    d = smx.start(TLS_BODY + "limit message-size 10M\n")
    c = Client(d.port)
    c.ehlo()
    c.ok("MAIL FROM:<a@sender.org>")
    with open(d.conf_path) as f:
        text = f.read()
    with open(d.conf_path, "w") as f:
        f.write(text.replace("limit message-size 10M", "limit message-size 1K"))
    r = d.ctl("reload")
    assert r.returncode == 0, r.stdout + r.stderr
    # The old session still works, under the old limit.
    c.ok("RCPT TO:<x@example.com>")
    c.ok("DATA", 354)
    c.send(b"Subject: reload\r\n\r\n" + (b"z" * 70 + b"\r\n") * 70 +
           b".\r\n")
    assert c.reply()[0] == 250
    # A new one gets the new limit, and TLS from the reloaded keys.
    n = Client(d.port)
    assert "SIZE 1024" in n.ehlo().split("\n")
    n.starttls()
    n.ehlo()
    code, text = send_message(n, b"Subject: after\r\n\r\nx")
    assert code == 250


def test_reload_with_no_session_open_keeps_serving(smx):
    d = smx.start(TLS_BODY)
    no_sessions(d)
    for _ in range(2):
        r = d.ctl("reload")
        assert r.returncode == 0, r.stdout + r.stderr
        c = Client(d.port)
        c.ehlo()
        c.starttls()
        c.ehlo()
        assert send_message(c, b"Subject: r\r\n\r\nx")[0] == 250
        c.cmd("QUIT")
    assert d.running()


def test_pause_smtp_stops_accepting(smx):
    d = smx.start(TLS_BODY)
    r = d.ctl("pause", "smtp")
    assert r.returncode == 0, r.stdout + r.stderr
    s = socket.create_connection(("127.0.0.1", d.port), timeout=2)
    s.settimeout(1.5)
    with pytest.raises(socket.timeout):
        s.recv(100)
    assert d.ctl("resume", "smtp").returncode == 0
    assert s.recv(100).startswith(b"220 ")
