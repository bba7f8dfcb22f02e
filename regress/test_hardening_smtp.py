"""Hostile clients of the smtp process (issue 18, defects 4-7):

- slowloris: a command has `timeout command` from its first octet,
  octets that trickle in do not extend it; a message must come at
  `limit data-rate` on average and may fall behind by at most
  `timeout data` (splitmx.conf(5), TIMEOUTS AND LIMITS);
- directory harvesting: unknown recipients are errors, answered more
  slowly after a few (a timer per session, other sessions go on), and
  the session ends at `limit errors`;
- ORCPT is checked whole at RCPT;
- log lines: a value a client chose cannot forge key=value fields, and
  `log verbose` escapes the control octets of the protocol trace
  (splitmxd(8), LOGGING).
"""
import re
import select
import socket
import time

import pytest

from conftest import wait_for
from test_smtp import TLS_BODY, Client, nothing_queued, queue_id

DIRECTORY = "alice@example.com local\n"

# example.com from a directory: alice is known, everybody else unknown.
DIR_BODY = """
table people file "{tmp}/directory"
domain "example.com" {{
\ttype authoritative
\tdirectory people
\tlocal to "[127.0.0.1]:9" tls none
\tunknown reject
}}
"""


def start_dir(smx, extra=""):
    with open(smx.tmp + "/directory", "w") as f:
        f.write(DIRECTORY)
    return smx.start(DIR_BODY + extra)


def trickle(c, data, every, until):
    """Send data an octet at a time, every `every` seconds, until the
    server says something or `until` seconds have passed.  Returns
    (seconds from the first octet to the reply or None, octets sent)."""
    t0 = time.monotonic()
    sent = 0
    while time.monotonic() - t0 < until:
        if sent < len(data):
            try:
                c.send(data[sent:sent + 1])
            except OSError:
                break
            sent += 1
        r, _, _ = select.select([c.sock], [], [], every)
        if r:
            return time.monotonic() - t0, sent
    return None, sent


# --- defect 4: slowloris ------------------------------------------------

def test_command_trickled_in_meets_its_deadline(smx):
    d = smx.start(TLS_BODY + "timeout command 2s\n")
    c = Client(d.port)
    c.ehlo()
    took, sent = trickle(c, b"NOOP " + b"x" * 100, 0.3, 8)
    assert took is not None, "no reply after 8 s of trickling"
    assert 1.5 <= took < 4, took
    code, text = c.reply()
    assert (code, text[:5]) == (421, "4.4.2")
    assert c.closed()
    assert re.search(r"event=disconnect reason=command-timeout", d.log())


def test_command_deadline_starts_again_with_each_command(smx):
    d = smx.start(TLS_BODY + "timeout command 2s\n")
    c = Client(d.port)
    c.ehlo()
    # Three commands, each well within its deadline, 4.5 s in all.
    for i in range(3):
        for b in b"NOOP":
            c.send(bytes([b]))
            time.sleep(0.25)
        assert c.cmd("")[0] == 250
    assert c.cmd("QUIT")[0] == 221


def test_message_trickled_below_the_data_rate_is_421(smx):
    # The default rate (1K a second) with a short grace.
    d = smx.start(TLS_BODY + "timeout data 2s\n")
    c = Client(d.port)
    c.ehlo()
    c.ok("MAIL FROM:<a@sender.org>")
    c.ok("RCPT TO:<x@example.com>")
    c.ok("DATA", 354)
    took, sent = trickle(c, b"Subject: slow\r\n\r\n" + b"y" * 200, 0.3, 8)
    assert took is not None, "no reply after 8 s of trickling"
    assert 1.5 <= took < 4, took
    code, text = c.reply()
    assert (code, text[:5]) == (421, "4.4.2")
    assert c.closed()
    nothing_queued(d)
    assert re.search(r"event=disconnect reason=data-timeout", d.log())


def test_bdat_chunk_trickled_below_the_data_rate_is_421(smx):
    d = smx.start(TLS_BODY + "timeout data 2s\n")
    c = Client(d.port)
    c.ehlo()
    c.ok("MAIL FROM:<a@sender.org>")
    c.ok("RCPT TO:<x@example.com>")
    c.send(b"BDAT 1000 LAST\r\n")
    took, sent = trickle(c, b"Subject: slow\r\n\r\n" + b"y" * 900, 0.3, 8)
    assert took is not None, "no reply after 8 s of trickling"
    code, text = c.reply()
    assert (code, text[:5]) == (421, "4.4.2")
    assert c.closed()
    nothing_queued(d)


def test_message_above_the_data_rate_may_outlast_timeout_data(smx):
    d = smx.start(TLS_BODY + "timeout data 1s\nlimit data-rate 1K\n")
    c = Client(d.port)
    c.ehlo()
    c.ok("MAIL FROM:<a@sender.org>")
    c.ok("RCPT TO:<x@example.com>")
    c.ok("DATA", 354)
    c.send(b"Subject: steady\r\n\r\n")
    # 4 KB a second for 3 s: three times the grace, four times the rate.
    t0 = time.monotonic()
    while time.monotonic() - t0 < 3:
        c.send(b"z" * 98 + b"\r\n")
        time.sleep(0.025)
    c.send(b".\r\n")
    code, text = c.reply()
    assert code == 250, text
    queue_id(text)


def test_data_rate_is_a_configuration_option(smx):
    text, _ = smx.config("limit data-rate 0\n")
    import subprocess
    from conftest import SPLITMXD
    path = smx.tmp + "/rate.conf"
    with open(path, "w") as f:
        f.write(text)
    r = subprocess.run([SPLITMXD, "-n", "-f", path], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1
    assert re.search(r"rate\.conf:\d+: limit data-rate must be between "
                     r"1 and ", r.stderr), r.stderr


# --- defect 5: directory harvesting ------------------------------------

def test_unknown_recipients_count_as_errors_and_close_the_session(smx):
    d = start_dir(smx, "limit errors 5\n")
    c = Client(d.port)
    c.ehlo()
    c.ok("MAIL FROM:<a@sender.org>")
    c.ok("RCPT TO:<alice@example.com>")
    for i in range(5):
        code, text = c.cmd("RCPT TO:<nobody%d@example.com>" % i)
        assert (code, text[:5]) == (550, "5.1.1"), (i, code, text)
    code, text = c.reply()
    assert (code, text[:5]) == (421, "4.7.0")
    assert c.closed()
    d.wait_log(r"event=too-many-errors client=127\.0\.0\.1 errors=5")


def test_answers_slow_down_after_a_few_errors_and_others_go_on(smx):
    d = start_dir(smx, "limit errors 10\n")
    c = Client(d.port)
    c.ehlo()
    c.ok("MAIL FROM:<a@sender.org>")
    took = []
    for i in range(5):
        t0 = time.monotonic()
        c.send("RCPT TO:<nobody%d@example.com>\r\n" % i)
        if i == 4:
            # While this answer waits, another session is answered at
            # once: the smtp process does not sleep.
            other = Client(d.port)
            other.ehlo()
            assert other.cmd("NOOP")[0] == 250
            other.cmd("QUIT")
            assert time.monotonic() - t0 < 1.5
        code, text = c.reply()
        took.append(time.monotonic() - t0)
        assert code == 550
    assert max(took[:3]) < 0.5, took
    assert min(took[3:]) >= 0.9, took
    # The delay holds the answers, not the transaction: a known
    # recipient after them is accepted.
    assert c.cmd("RCPT TO:<alice@example.com>")[0] == 250


def test_pipelined_unknown_recipients_end_at_the_limit(smx):
    d = start_dir(smx, "limit errors 4\n")
    c = Client(d.port)
    c.ehlo()
    c.send("MAIL FROM:<a@sender.org>\r\n" + "".join(
        "RCPT TO:<n%d@example.com>\r\n" % i for i in range(2000)))
    assert c.reply()[0] == 250
    codes = []
    while True:
        try:
            codes.append(c.reply()[0])
        except (EOFError, ConnectionResetError, socket.timeout):
            break
    assert codes == [550, 550, 550, 550, 421], codes


def test_unknown_recipients_of_trusted_clients_are_not_counted(smx):
    d = start_dir(smx, "limit errors 3\ntrusted 127.0.0.1\n")
    c = Client(d.port)
    c.ehlo()
    c.ok("MAIL FROM:<a@sender.org>")
    t0 = time.monotonic()
    for i in range(6):
        assert c.cmd("RCPT TO:<nobody%d@example.com>" % i)[0] == 550
    assert time.monotonic() - t0 < 2
    c.ok("RCPT TO:<alice@example.com>")
    assert c.cmd("QUIT")[0] == 221


# --- defect 6: ORCPT ----------------------------------------------------

BAD_ORCPT = [
    b"rfc\x1b822;x@example.com",        # a control octet in the type
    b"rfc\xff822;x@example.com",        # an 8-bit octet in the type
    b"rfc822:;x@example.com",           # not an atom
    b";x@example.com",                  # no type
    b"rfc822;",                         # no address
    b"rfc822;x+1B@example.com",         # decodes to a control octet
    b"rfc822;x+FF@example.com",         # decodes to an 8-bit octet
    b"rfc822;x+7F@example.com",         # DEL
    b"rfc822;x+00@example.com",         # NUL
    b"rfc822;x+G1@example.com",         # not hex
    b"rfc822;x=y@example.com",          # "=" must be +3D
    b"rfc822;\xc3\xa5se@example.com",   # raw UTF-8 is not xtext
]

GOOD_ORCPT = [
    b"rfc822;x@example.com",
    b"RFC822;Bob+2B1@Example.COM",
    b"rfc822;+22john+20doe+22@example.com",
    b"utf-8;j\\x{E9}r\\x{F4}me@example.com",
    b"x-private-type;anything!#$%&'*-/?^_`{|}~@example.com",
]


@pytest.mark.parametrize("orcpt", BAD_ORCPT)
def test_bad_orcpt_is_501_at_rcpt(smx, orcpt):
    d = smx.start(TLS_BODY + "limit errors 100\n")
    c = Client(d.port)
    c.ehlo()
    c.ok("MAIL FROM:<a@sender.org>")
    c.send(b"RCPT TO:<x@example.com> ORCPT=" + orcpt + b"\r\n")
    code, text = c.reply()
    assert (code, text[:5]) == (501, "5.5.4"), (orcpt, code, text)


def test_good_orcpt_is_accepted(smx):
    d = smx.start(TLS_BODY)
    c = Client(d.port)
    c.ehlo()
    c.ok("MAIL FROM:<a@sender.org>")
    for o in GOOD_ORCPT:
        c.send(b"RCPT TO:<x@example.com> ORCPT=" + o + b"\r\n")
        code, text = c.reply()
        assert code == 250, (o, code, text)


# --- defect 7: log lines ------------------------------------------------

FIELD = re.compile(r'([A-Za-z][\w.-]*)=("(?:[^"\\]|\\.)*"|[^\s"]*)(?=\s|$)')


def fields(line):
    """The key=value fields of a log line, by the grammar of
    splitmxd(8): a value is a token without space or '"', or a quoted
    string with backslash escapes.  A quoted value is returned as
    written."""
    out = []
    pos = 0
    while pos < len(line):
        m = FIELD.match(line, pos)
        if m:
            out.append((m.group(1), m.group(2)))
            pos = m.end()
            continue
        # Not a field: skip this word (a quoted run as a whole).
        m = re.compile(r'"(?:[^"\\]|\\.)*"|\S+').match(line, pos)
        pos = m.end() if m else pos + 1
        while pos < len(line) and line[pos] == " ":
            pos += 1
    return out


def unquote(v):
    if not v.startswith('"'):
        return v
    return re.sub(r'\\(x([0-9a-fA-F]{2})|.)',
                  lambda m: chr(int(m.group(2), 16)) if m.group(2)
                  else m.group(1), v[1:-1])


def test_quoted_local_part_cannot_forge_log_fields(smx):
    d = smx.start(TLS_BODY)
    c = Client(d.port)
    c.ehlo()
    forged = '"x event=message id=FORGED"@example.com'
    c.ok('MAIL FROM:<"y event=message id=FORGED2 from=<z>"@sender.org>')
    c.ok("RCPT TO:<%s>" % forged)
    c.ok("DATA", 354)
    c.send(b"Subject: forge\r\n\r\nx\r\n.\r\n")
    code, text = c.reply()
    assert code == 250
    qid = queue_id(text)
    # Every process has logged it: smtp, lookup, queue, relay.
    d.wait_log(r"id=%s event=deferred" % qid, 20)
    seen_to = False
    for line in d.log().splitlines():
        f = fields(line)
        ids = [v for k, v in f if k == "id"]
        events = [v for k, v in f if k == "event"]
        assert not any("FORGED" in v for v in ids), line
        assert len(events) <= 1, line
        for k, v in f:
            if k == "to" and "FORGED" in v:
                assert unquote(v) == "<%s>" % forged, line
                seen_to = True
    assert seen_to


def test_verbose_log_escapes_control_octets(smx):
    d = smx.start(TLS_BODY)
    c = Client(d.port)
    c.ehlo()
    c.send(b"NOOP \x1b[2J\x07bell\ttab\xff\\\r\n")
    assert c.reply()[0] == 250
    c.send(b"VRFY \x1b]0;owned\x07\r\n")
    assert c.reply()[0] == 252
    d.wait_log(r'<<< "VRFY ')
    log = open(d.log_path, "rb").read()
    for bad in (b"\x1b", b"\x07", b"\xff", b"bell\ttab"):
        assert bad not in log, bad
    assert b'<<< "NOOP \\x1b[2J\\x07bell\\x09tab\\xff\\\\"' in log
