"""Outbound delivery: the relay process' SMTP client and the DNS behind it.

Mail goes into splitmx by SMTP for example.com, a relay domain whose
"forward to" is the destination under test, and comes out at real SMTP
servers on loopback: aiosmtpd where a well-behaved server will do, a
scripted one (RawSMTP) for what aiosmtpd will not do, and the loopback
DNS server of conftest.py for MX records.  The relay logs one line per
recipient and attempt,

    msgid=... event=delivery to=<rcpt> relay=host[ip]:port status=sent
        reply="250 ..." tls=TLSv1.3

and those lines are what most tests read.  Only 127.0.0.1 and 127.0.0.2
are used.
"""
import os
import random
import re
import smtplib
import socket
import socketserver
import ssl
import threading
import time

import pytest

from conftest import wait_for


DELIVERY_RE = re.compile(
    r'msgid=(?P<msgid>\S+) event=delivery to=<(?P<to>[^>]*)> '
    r'relay=(?P<relay>\S+) status=(?P<status>\w+) '
    r'reply="(?P<reply>[^"]*)" tls=(?P<tls>\S+)')

MESSAGE = (b"From: Sender <sender@client.example>\r\n"
           b"To: <rcpt@example.com>\r\n"
           b"Subject: relay test\r\n"
           b"Message-ID: <relay-test@client.example>\r\n"
           b"\r\n"
           b"First line.\r\n"
           b".A line that starts with a dot.\r\n"
           b"..Two dots.\r\n"
           b"\r\n"
           b"Last line.\r\n")


def free_port_both():
    """A TCP port free on 127.0.0.1 and 127.0.0.2 (two MX hosts)."""
    for _ in range(100):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.2", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free on both addresses")


def strip_received(data):
    """The message as the client sent it: our Received header removed."""
    assert data.startswith(b"Received: "), data[:80]
    lines = data.split(b"\r\n")
    i = 1
    while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
        i += 1
    return b"\r\n".join(lines[i:])


class RelaySink:
    """An aiosmtpd server that keeps what it gets and counts connections.

    rcpt(address) may return a reply for RCPT TO (None: accept);
    eom may be the reply to the end of data; smtp_kw go to aiosmtpd's
    SMTP (tls_context=... offers STARTTLS)."""

    def __init__(self, host="127.0.0.1", port=None, rcpt=None, eom=None,
                 **smtp_kw):
        from aiosmtpd.controller import Controller
        self.host = host
        self.port = port
        self.messages = []
        self.peers = set()
        self.lock = threading.Lock()
        self.rcpt_hook = rcpt
        self.eom = eom
        self.controller = Controller(self, hostname=host, port=port,
                                     **smtp_kw)
        self.controller.start()

    async def handle_RCPT(self, server, session, envelope, address,
                          rcpt_options):
        with self.lock:
            self.peers.add(session.peer)
        reply = self.rcpt_hook(address) if self.rcpt_hook else None
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.eom:
            return self.eom
        with self.lock:
            self.messages.append({
                "from": envelope.mail_from,
                "rcpts": list(envelope.rcpt_tos),
                "data": envelope.original_content or envelope.content,
                "peer": session.peer,
                "tls": session.ssl is not None,
            })
        return "250 2.0.0 OK queued"

    @property
    def connections(self):
        with self.lock:
            return len(self.peers)

    def wait(self, n, timeout=20):
        wait_for(lambda: len(self.messages) >= n, timeout,
                 what="%d messages at %s:%d" % (n, self.host, self.port))
        return self.messages

    def stop(self):
        self.controller.stop()


class RawConn:
    """One connection to RawSMTP, as its behaviour sees it."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def send(self, *lines):
        self.sock.sendall(b"".join(l.encode() + b"\r\n" for l in lines))

    def readline(self, timeout=30):
        """A line without its CRLF, or None when the client is gone."""
        self.sock.settimeout(timeout)
        while b"\n" not in self.buf:
            try:
                b = self.sock.recv(65536)
            except OSError:
                return None
            if not b:
                return None
            self.buf += b
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def buffered(self, wait=0.3):
        """Has the client sent more than we read (pipelining)?"""
        time.sleep(wait)
        self.sock.setblocking(False)
        try:
            self.buf += self.sock.recv(65536)
        except BlockingIOError:
            pass
        finally:
            self.sock.setblocking(True)
        return self.buf != b""


class RawSMTP:
    """A scripted SMTP server on loopback for what aiosmtpd will not do:
    missing extensions, hostile replies, stalls, dropped connections.

    By default it is a plain ESMTP server; the keyword arguments change
    what it says at each step (a callable gets the command line), and
    a script(conn) replaces the whole dialogue.  What arrives is kept:
    .messages (mail, rcpts, data), .commands (every command line) and
    .pipelined (whether RCPTs were already there when MAIL was read)."""

    def __init__(self, host="127.0.0.1", port=None, script=None,
                 greeting="220 raw.test ESMTP",
                 ehlo=("PIPELINING", "8BITMIME", "SIZE 10485760"),
                 ehlo_reply=None, helo_reply="250 raw.test",
                 mail_reply="250 2.1.0 OK", rcpt_reply="250 2.1.5 OK",
                 data_reply="354 go ahead", eom_reply="250 2.0.0 queued"):
        self.script = script or self.dialogue
        self.greeting = greeting
        self.ehlo = ehlo
        self.ehlo_reply = ehlo_reply
        self.helo_reply = helo_reply
        self.mail_reply = mail_reply
        self.rcpt_reply = rcpt_reply
        self.data_reply = data_reply
        self.eom_reply = eom_reply
        self.messages = []
        self.commands = []
        self.pipelined = []
        self.connections = 0
        self.socks = []
        self.lock = threading.Lock()
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                with outer.lock:
                    outer.connections += 1
                    outer.socks.append(self.request)
                try:
                    outer.script(RawConn(self.request))
                except OSError:
                    pass

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server((host, port or 0), Handler)
        self.host = host
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever,
                         daemon=True).start()

    @staticmethod
    def _reply(r, line):
        return r(line) if callable(r) else r

    def dialogue(self, c):
        c.send(self.greeting)
        mail, rcpts = None, []
        while True:
            line = c.readline()
            if line is None:
                return
            with self.lock:
                self.commands.append(line)
            verb = line.split(" ", 1)[0].upper()
            if verb == "EHLO":
                if self.ehlo_reply is not None:
                    r = self._reply(self.ehlo_reply, line)
                    c.send(*([r] if isinstance(r, str) else r))
                    continue
                lines = ["raw.test"] + list(self.ehlo)
                c.send(*["250-" + l for l in lines[:-1]],
                       "250 " + lines[-1])
            elif verb == "HELO":
                c.send(self.helo_reply)
            elif verb == "MAIL":
                r = self._reply(self.mail_reply, line)
                if "PIPELINING" in self.ehlo:
                    with self.lock:
                        self.pipelined.append(c.buffered())
                mail, rcpts = (line, []) if r.startswith("2") else (None, [])
                c.send(r)
            elif verb == "RCPT":
                r = self._reply(self.rcpt_reply, line)
                if r.startswith("2"):
                    rcpts.append(line)
                c.send(r)
            elif verb == "DATA":
                r = self._reply(self.data_reply, line)
                c.send(r)
                if not r.startswith("354"):
                    continue
                data = []
                while True:
                    l = c.readline()
                    if l is None:
                        return
                    if l == ".":
                        break
                    data.append(l[1:] if l.startswith(".") else l)
                with self.lock:
                    self.messages.append({"mail": mail, "rcpts": rcpts,
                                          "data": data})
                r = self._reply(self.eom_reply, line)
                if r is None:
                    return          # hang up without an answer
                c.send(r)
                mail, rcpts = None, []
            elif verb == "RSET":
                mail, rcpts = None, []
                c.send("250 2.0.0 OK")
            elif verb == "QUIT":
                c.send("221 2.0.0 bye")
                return
            else:
                c.send("502 5.5.2 unknown command")

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            for s in self.socks:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class RelayWorld:
    """splitmx whose relay domain example.com goes to the destination
    under test; mail goes in by SMTP, results come out at the servers
    and in the log."""

    def __init__(self, smx):
        self.smx = smx
        self.daemon = None

    def start(self, dest, tls="none", conf=""):
        body = ('domain "example.com" {\n\ttype relay\n'
                '\tforward to "%s" tls %s\n}\n%s\n' % (dest, tls, conf))
        # smx.start() formats the body: braces are literal here.
        body = body.replace("{", "{{").replace("}", "}}")
        self.dest, self.tls = dest, tls
        self.daemon = self.smx.start(body)
        return self

    def reload(self, conf=""):
        """The same destination with another configuration tail."""
        body = ('domain "example.com" {\n\ttype relay\n'
                '\tforward to "%s" tls %s\n}\n%s\n' %
                (self.dest, self.tls, conf))
        text, _ = self.smx.config(body.replace("{", "{{").replace("}", "}}"),
                                  port=self.daemon.port)
        with open(self.daemon.conf_path, "w") as f:
            f.write(text)
        r = self.daemon.ctl("reload")
        assert r.returncode == 0, r.stdout + r.stderr

    def send(self, rcpts, data=MESSAGE, sender="sender@client.example",
             body8=False, utf8=False, rcpt_options=()):
        opts = []
        if body8:
            opts.append("BODY=8BITMIME")
        if utf8:
            opts.append("SMTPUTF8")
        with smtplib.SMTP("127.0.0.1", self.daemon.port, timeout=30) as c:
            c.ehlo("client.example")
            refused = c.sendmail(sender, list(rcpts), data, opts,
                                 list(rcpt_options))
            assert not refused, refused

    def log(self):
        return self.daemon.log()

    def deliveries(self, rcpt=None):
        out = [m.groupdict() for m in DELIVERY_RE.finditer(self.log())]
        return [d for d in out if rcpt is None or d["to"] == rcpt]

    def delivery(self, rcpt, status=None, timeout=20):
        """The first delivery line for rcpt (with that status)."""
        def find():
            for d in self.deliveries(rcpt):
                if status is None or d["status"] == status:
                    return d
            return None
        try:
            return wait_for(find, timeout, interval=0.05,
                            what="delivery of <%s>" % rcpt)
        except TimeoutError:
            raise AssertionError("no delivery line for <%s>:\n%s" %
                                 (rcpt, self.log()[-4000:]))

    def running(self):
        return self.daemon.running()

    def stop(self):
        pass


@pytest.fixture
def relay(smx):
    world = RelayWorld(smx)
    yield world
    world.stop()


@pytest.fixture
def servers():
    """Servers a test starts, stopped at the end whatever happens."""
    started = []
    yield started
    for s in started:
        s.stop()


def sink_at(servers, *args, **kw):
    s = RelaySink(*args, **kw)
    servers.append(s)
    return s


def raw_at(servers, *args, **kw):
    s = RawSMTP(*args, **kw)
    servers.append(s)
    return s


def tls_context(certs):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*certs)
    return ctx


# --- delivery --------------------------------------------------------------

def test_message_arrives_byte_exact(relay, servers):
    sink = sink_at(servers, port=free_port_both())
    relay.start("[127.0.0.1]:%d" % sink.port)
    relay.send(["alice@example.com"])
    m = sink.wait(1)[0]
    assert m["from"] == "sender@client.example"
    assert m["rcpts"] == ["alice@example.com"]
    assert strip_received(m["data"]) == MESSAGE
    d = relay.delivery("alice@example.com")
    assert d["status"] == "sent"
    assert d["relay"] == "127.0.0.1[127.0.0.1]:%d" % sink.port
    assert d["reply"].startswith("250 2.0.0 OK queued")
    assert d["tls"] == "none"


def test_large_message_arrives_byte_exact(relay, servers):
    sink = sink_at(servers, port=free_port_both())
    relay.start("[127.0.0.1]:%d" % sink.port)
    body = b"".join(b"%s%06d %s\r\n" % (b"." if i % 7 == 0 else b"", i,
                                         b"x" * 70) for i in range(3000))
    data = b"Subject: big\r\n\r\n" + body
    relay.send(["alice@example.com"], data)
    m = sink.wait(1)[0]
    assert strip_received(m["data"]) == data



def test_random_lines_across_read_boundaries_arrive_byte_exact(relay,
                                                               servers):
    """The relay reads the file in 64 KB pieces: lines of every length,
    a third of them starting with a dot, put piece ends everywhere (mid
    line, between CR and LF, before a dot)."""
    sink = sink_at(servers, port=free_port_both())
    relay.start("[127.0.0.1]:%d" % sink.port)
    rnd = random.Random(11)
    sent = []
    for n in range(4):
        lines = [b"Subject: lines %d" % n, b""]
        size = 0
        while size < 300000:
            ln = (b"." if rnd.random() < 0.33 else b"") + b"y" * rnd.choice(
                [0, 1, 2, 60, 500, 997])
            lines.append(ln)
            size += len(ln) + 2
        data = b"".join(ln + b"\r\n" for ln in lines)
        relay.send(["alice@example.com"], data)
        sent.append(data)
    got = sorted(strip_received(m["data"]) for m in sink.wait(4))
    assert got == sorted(sent)

def test_recipients_share_one_transaction(relay, servers):
    sink = sink_at(servers, port=free_port_both())
    relay.start("[127.0.0.1]:%d" % sink.port)
    rcpts = ["a@example.com", "b@example.com", "c@example.com"]
    relay.send(rcpts)
    m = sink.wait(1)[0]
    assert sorted(m["rcpts"]) == rcpts
    time.sleep(0.5)
    assert len(sink.messages) == 1
    for r in rcpts:
        assert relay.delivery(r)["status"] == "sent"


def test_connection_is_reused(relay, servers):
    sink = sink_at(servers, port=free_port_both())
    relay.start("[127.0.0.1]:%d" % sink.port)
    for i in range(10):
        relay.send(["r%d@example.com" % i])
        relay.delivery("r%d@example.com" % i, "sent")
    sink.wait(10)
    assert sink.connections <= 2, sink.connections
    assert relay.log().count("event=delivery") == 10


def test_more_than_100_recipients_take_several_transactions(relay,
                                                            servers):
    sink = sink_at(servers, port=free_port_both())
    relay.start("[127.0.0.1]:%d" % sink.port, conf="limit recipients 300")
    rcpts = ["r%03d@example.com" % i for i in range(150)]
    relay.send(rcpts)
    wait_for(lambda: sum(len(m["rcpts"]) for m in sink.messages) >= 150, 30,
             what="150 recipients")
    assert sorted(r for m in sink.messages for r in m["rcpts"]) == rcpts
    assert max(len(m["rcpts"]) for m in sink.messages) <= 100


def test_452_recipients_get_another_transaction(relay, servers):
    def rcpt_reply(line):
        since_mail = raw.commands[::-1]
        n = 0
        for c in since_mail:
            if c.startswith("MAIL"):
                break
            n += c.startswith("RCPT")
        return "452 4.5.3 too many recipients" if n > 2 else "250 OK"
    raw = raw_at(servers, rcpt_reply=rcpt_reply)
    relay.start("[127.0.0.1]:%d" % raw.port)
    rcpts = ["r%d@example.com" % i for i in range(5)]
    relay.send(rcpts)
    for r in rcpts:
        relay.delivery(r, "sent")
    assert [len(m["rcpts"]) for m in raw.messages] == [2, 2, 1]


def test_pipelining_sends_mail_and_rcpts_together(relay, servers):
    raw = raw_at(servers)
    relay.start("[127.0.0.1]:%d" % raw.port)
    relay.send(["a@example.com", "b@example.com"])
    relay.delivery("a@example.com", "sent")
    assert raw.pipelined == [True]
    mail = [c for c in raw.commands if c.startswith("MAIL")]
    assert len(mail) == 1
    assert re.fullmatch(r"MAIL FROM:<sender@client\.example> SIZE=\d+",
                        mail[0]), mail


def test_no_pipelining_one_command_at_a_time(relay, servers):
    raw = raw_at(servers, ehlo=("8BITMIME",))
    relay.start("[127.0.0.1]:%d" % raw.port)
    relay.send(["a@example.com", "b@example.com"])
    relay.delivery("b@example.com", "sent")
    verbs = [c.split(" ")[0].split(":")[0] for c in raw.commands]
    assert verbs[:5] == ["EHLO", "MAIL", "RCPT", "RCPT", "DATA"]
    # No SIZE keyword from the server: no SIZE parameter from us.
    assert "SIZE=" not in raw.commands[1]


def test_ehlo_refused_falls_back_to_helo(relay, servers):
    raw = raw_at(servers, ehlo_reply="502 5.5.2 EHLO not implemented")
    relay.start("[127.0.0.1]:%d" % raw.port)
    relay.send(["a@example.com"])
    assert relay.delivery("a@example.com")["status"] == "sent"
    assert raw.commands[0] == "EHLO mx.test.example"
    assert raw.commands[1] == "HELO mx.test.example"


def test_dsn_parameters_only_to_a_dsn_server(relay, servers):
    raw = raw_at(servers, ehlo=("PIPELINING", "8BITMIME", "DSN"))
    relay.start("[127.0.0.1]:%d" % raw.port)
    relay.send(["a@example.com"], rcpt_options=[
        "NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;a@example.com"])
    relay.delivery("a@example.com", "sent")
    rcpt = [c for c in raw.commands if c.startswith("RCPT")][0]
    assert rcpt == ("RCPT TO:<a@example.com> NOTIFY=SUCCESS,FAILURE "
                    "ORCPT=rfc822;a@example.com")
    # The server reports the success itself: no "relayed" DSN from us.
    time.sleep(0.5)
    assert "action=relayed" not in relay.log()


def test_no_dsn_parameters_to_a_server_without_dsn(relay, servers):
    raw = raw_at(servers, ehlo=("PIPELINING", "8BITMIME"))
    relay.start("[127.0.0.1]:%d" % raw.port)
    relay.send(["a@example.com"], rcpt_options=[
        "NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;a@example.com"])
    relay.delivery("a@example.com", "sent")
    rcpt = [c for c in raw.commands if c.startswith("RCPT")][0]
    assert rcpt == "RCPT TO:<a@example.com>"
    # It will not report the success: we do, with a "relayed" DSN.
    relay.daemon.wait_log(r"event=dsn for=[0-9a-f]{24} action=relayed "
                          r"to=<[^>]*> recipients=1")


# --- what the server says --------------------------------------------------

def test_rcpt_4xx_is_deferred(relay, servers):
    sink = sink_at(servers, port=free_port_both(),
                   rcpt=lambda a: "451 4.3.0 try again later")
    relay.start("[127.0.0.1]:%d" % sink.port)
    relay.send(["a@example.com"])
    d = relay.delivery("a@example.com")
    assert d["status"] == "deferred"
    assert d["reply"] == "451 4.3.0 try again later"
    time.sleep(0.5)
    assert sink.messages == []


def test_rcpt_5xx_bounces_that_recipient_only(relay, servers):
    sink = sink_at(servers, port=free_port_both(),
                   rcpt=lambda a: "550 5.1.1 no such user"
                   if a.startswith("bad") else None)
    relay.start("[127.0.0.1]:%d" % sink.port)
    relay.send(["good@example.com", "bad@example.com"])
    assert relay.delivery("bad@example.com")["status"] == "bounced"
    assert relay.delivery("bad@example.com")["reply"] == \
        "550 5.1.1 no such user"
    assert relay.delivery("good@example.com")["status"] == "sent"
    assert sink.wait(1)[0]["rcpts"] == ["good@example.com"]


def test_end_of_data_5xx_bounces_every_recipient(relay, servers):
    sink = sink_at(servers, port=free_port_both(),
                   eom="554 5.7.1 content rejected")
    relay.start("[127.0.0.1]:%d" % sink.port)
    relay.send(["a@example.com", "b@example.com"])
    for r in ("a@example.com", "b@example.com"):
        d = relay.delivery(r)
        assert d["status"] == "bounced"
        assert d["reply"] == "554 5.7.1 content rejected"


def test_end_of_data_4xx_is_deferred(relay, servers):
    sink = sink_at(servers, port=free_port_both(),
                   eom="452 4.3.1 insufficient storage")
    relay.start("[127.0.0.1]:%d" % sink.port)
    relay.send(["a@example.com"])
    d = relay.delivery("a@example.com")
    assert d["status"] == "deferred"
    assert d["reply"] == "452 4.3.1 insufficient storage"


def test_mail_5xx_bounces_every_recipient(relay, servers):
    raw = raw_at(servers, mail_reply="553 5.7.1 sender refused")
    relay.start("[127.0.0.1]:%d" % raw.port)
    relay.send(["a@example.com", "b@example.com"])
    for r in ("a@example.com", "b@example.com"):
        d = relay.delivery(r)
        assert d["status"] == "bounced"
        assert d["reply"] == "553 5.7.1 sender refused"


def test_multiline_reply_is_kept_whole(relay, servers):
    raw = raw_at(servers, rcpt_reply=lambda l: "550-5.1.1 first line\r\n"
                 "550-5.1.1 second line\r\n550 5.1.1 third line")
    relay.start("[127.0.0.1]:%d" % raw.port)
    relay.send(["a@example.com"])
    d = relay.delivery("a@example.com")
    assert d["status"] == "bounced"
    assert d["reply"] == ("550 5.1.1 first line; 5.1.1 second line; "
                          "5.1.1 third line")


def test_greeting_refused_is_deferred(relay, servers):
    raw = raw_at(servers, greeting="554 5.3.2 no service")
    relay.start("[127.0.0.1]:%d" % raw.port)
    relay.send(["a@example.com"])
    d = relay.delivery("a@example.com")
    assert d["status"] == "deferred"
    assert "554 5.3.2 no service" in d["reply"]


def test_dropped_connection_is_deferred(relay, servers):
    def drop_at_mail(c):
        c.send("220 raw.test ESMTP")
        while True:
            line = c.readline()
            if line is None or line.startswith("MAIL"):
                return
            c.send("250 raw.test")
    raw = raw_at(servers, script=drop_at_mail)
    relay.start("[127.0.0.1]:%d" % raw.port)
    relay.send(["a@example.com"])
    d = relay.delivery("a@example.com")
    assert d["status"] == "deferred"
    assert "connection closed" in d["reply"]


def test_connection_refused_is_deferred(relay):
    port = free_port_both()
    relay.start("[127.0.0.1]:%d" % port)
    relay.send(["a@example.com"])
    d = relay.delivery("a@example.com")
    assert d["status"] == "deferred"
    assert "Connection refused" in d["reply"]


def test_stalled_greeting_times_out(relay, servers):
    raw = raw_at(servers, script=lambda c: c.readline(timeout=60))
    relay.start("[127.0.0.1]:%d" % raw.port, conf="timeout command 2s")
    t0 = time.monotonic()
    relay.send(["a@example.com"])
    d = relay.delivery("a@example.com", timeout=30)
    assert d["status"] == "deferred"
    assert "timeout" in d["reply"]
    assert time.monotonic() - t0 < 15


def test_stalled_end_of_data_times_out(relay, servers):
    raw = raw_at(servers, eom_reply=lambda l: time.sleep(30))
    relay.start("[127.0.0.1]:%d" % raw.port, conf="timeout data 2s")
    relay.send(["a@example.com"])
    d = relay.delivery("a@example.com", timeout=30)
    assert d["status"] == "deferred"
    assert "timeout waiting for the end-of-data reply" in d["reply"]


def test_ten_thousand_reply_lines_are_refused(relay, servers):
    flood = ["250-line %d" % i for i in range(10000)] + ["250 end"]
    raw = raw_at(servers, ehlo_reply=flood)
    relay.start("[127.0.0.1]:%d" % raw.port)
    relay.send(["a@example.com"])
    d = relay.delivery("a@example.com")
    assert d["status"] == "deferred"
    assert "bad reply" in d["reply"] and "too many lines" in d["reply"]
    assert relay.running()


def test_overlong_reply_line_is_refused(relay, servers):
    raw = raw_at(servers, rcpt_reply="250 " + "x" * 2000)
    relay.start("[127.0.0.1]:%d" % raw.port)
    relay.send(["a@example.com"])
    d = relay.delivery("a@example.com")
    assert d["status"] == "deferred"
    assert "reply line too long" in d["reply"]
    assert relay.running()


def test_garbage_reply_is_refused(relay, servers):
    raw = raw_at(servers, greeting="HTTP/1.1 400 Bad Request")
    relay.start("[127.0.0.1]:%d" % raw.port)
    relay.send(["a@example.com"])
    d = relay.delivery("a@example.com")
    assert d["status"] == "deferred"
    assert "malformed reply" in d["reply"]


# --- what the message needs ------------------------------------------------

def test_size_over_the_servers_limit_is_bounced(relay, servers):
    raw = raw_at(servers, ehlo=("PIPELINING", "8BITMIME", "SIZE 1000"))
    relay.start("[127.0.0.1]:%d" % raw.port)
    relay.send(["a@example.com"], MESSAGE + (b"x" * 70 + b"\r\n") * 80)
    d = relay.delivery("a@example.com")
    assert d["status"] == "bounced"
    assert d["reply"].startswith("5.3.4 ")
    assert not [c for c in raw.commands if c.startswith("MAIL")]


def test_8bit_to_a_server_without_8bitmime_is_bounced(relay, servers):
    raw = raw_at(servers, ehlo=("PIPELINING", "SIZE 1000000"))
    relay.start("[127.0.0.1]:%d" % raw.port)
    relay.send(["a@example.com"], "Subject: caf\u00e9\r\n\r\n\u00e9t\u00e9\r\n"
               .encode(), body8=True)
    d = relay.delivery("a@example.com")
    assert d["status"] == "bounced"
    assert d["reply"].startswith("5.6.3 ") and "8BITMIME" in d["reply"]
    assert raw.messages == []


def test_8bit_to_a_server_with_8bitmime_says_so(relay, servers):
    raw = raw_at(servers)
    relay.start("[127.0.0.1]:%d" % raw.port)
    relay.send(["a@example.com"], "Subject: caf\u00e9\r\n\r\n\u00e9t\u00e9\r\n"
               .encode(), body8=True)
    assert relay.delivery("a@example.com")["status"] == "sent"
    assert " BODY=8BITMIME" in raw.messages[0]["mail"]


def test_smtputf8_to_a_server_without_it_is_bounced(relay, servers):
    raw = raw_at(servers)
    relay.start("[127.0.0.1]:%d" % raw.port)
    relay.send(["a@example.com"], b"Subject: x\r\n\r\nx\r\n", utf8=True,
               body8=True)
    d = relay.delivery("a@example.com")
    assert d["status"] == "bounced"
    assert d["reply"].startswith("5.6.7 ")


# --- TLS -------------------------------------------------------------------

def test_tls_require_refuses_a_server_without_starttls(relay, servers):
    sink = sink_at(servers, port=free_port_both())
    relay.start("[127.0.0.1]:%d" % sink.port, tls="require")
    relay.send(["a@example.com"])
    d = relay.delivery("a@example.com")
    assert d["status"] == "deferred"
    assert "TLS required but not offered by" in d["reply"]
    assert sink.messages == []


def test_tls_require_stays_with_queued_mail_after_a_reload(relay, servers):
    """The route carries its TLS policy: mail queued for a "tls require"
    destination keeps it when a reload removes the domain, so a server
    that offers no STARTTLS gets nothing in clear."""
    port = free_port_both()
    relay.start("[127.0.0.1]:%d" % port, tls="require")
    relay.send(["a@example.com"])
    d = relay.delivery("a@example.com")
    assert d["status"] == "deferred"            # nobody listens yet
    body = ('domain "other.example" {\n\ttype relay\n'
            '\tforward to "[127.0.0.1]:9" tls none\n}\n')
    text, _ = relay.smx.config(body.replace("{", "{{").replace("}", "}}"),
                               port=relay.daemon.port)
    assert 'domain "example.com"' not in text
    with open(relay.daemon.conf_path, "w") as f:
        f.write(text)
    r = relay.daemon.ctl("reload")
    assert r.returncode == 0, r.stdout + r.stderr
    sink = sink_at(servers, port=port)          # plain text only
    r = relay.daemon.ctl("schedule", "all")
    assert r.returncode == 0, r.stdout + r.stderr
    wait_for(lambda: len(relay.deliveries("a@example.com")) >= 2, 20,
             what="a second attempt")
    d = relay.deliveries("a@example.com")[1]
    assert d["status"] == "deferred", d
    assert "TLS required but not offered by" in d["reply"], d
    assert sink.messages == [] and sink.connections == 0
    qid = relay.daemon.ctl_json("show", "queue")["queue"][0]["id"]
    info = relay.daemon.ctl_json("show", "message", qid)
    assert info["recipients"][0]["tls"] == "require"
    out = relay.daemon.ctl("show", "message", qid).stdout
    assert re.search(r"^recipient 1 <a@example.com> .* dest=\[127.0.0.1\]:"
                     r"%d tls=require notify=default" % port, out, re.M), out
    assert re.search(r"routed <a@example.com> as forward to "
                     r"\[127.0.0.1\]:%d \(tls require\)$" % port, out,
                     re.M), out


def test_tls_require_encrypts_without_verifying(relay, servers, certs):
    sink = sink_at(servers, port=free_port_both(),
                   tls_context=tls_context(certs))
    relay.start("[127.0.0.1]:%d" % sink.port, tls="require")
    relay.send(["a@example.com"])
    d = relay.delivery("a@example.com")
    assert d["status"] == "sent"
    assert d["tls"].startswith("TLSv1.")
    m = sink.wait(1)[0]
    assert m["tls"]
    assert strip_received(m["data"]) == MESSAGE


def test_tls_opportunistic_uses_starttls(relay, servers, certs):
    sink = sink_at(servers, port=free_port_both(),
                   tls_context=tls_context(certs))
    relay.start("[127.0.0.1]:%d" % sink.port, tls="opportunistic")
    relay.send(["a@example.com"])
    assert relay.delivery("a@example.com")["tls"].startswith("TLSv1.")
    assert sink.wait(1)[0]["tls"]


def test_tls_opportunistic_goes_clear_without_starttls(relay, servers):
    sink = sink_at(servers, port=free_port_both())
    relay.start("[127.0.0.1]:%d" % sink.port, tls="opportunistic")
    relay.send(["a@example.com"])
    d = relay.delivery("a@example.com")
    assert d["status"] == "sent" and d["tls"] == "none"


def test_tls_opportunistic_retries_in_clear_after_failed_handshake(
        relay, servers):
    def broken_tls(c):
        c.send("220 raw.test ESMTP")
        while True:
            line = c.readline()
            if line is None:
                return
            if line.startswith("EHLO"):
                c.send("250-raw.test", "250 STARTTLS")
            elif line == "STARTTLS":
                c.send("220 go ahead")
                c.sock.recv(65536)          # the client hello
                c.sock.sendall(b"this is not a TLS server hello\r\n" * 4)
                return
    calls = []

    def script(c):
        calls.append(1)
        if len(calls) == 1:
            broken_tls(c)
        else:
            raw.dialogue(c)
    raw = raw_at(servers, script=script)
    relay.start("[127.0.0.1]:%d" % raw.port, tls="opportunistic")
    relay.send(["a@example.com"])
    d = relay.delivery("a@example.com")
    assert d["status"] == "sent" and d["tls"] == "none"
    assert raw.connections == 2
    assert "action=retry-without-tls" in relay.log()


def test_tls_verify_refuses_a_self_signed_certificate(relay, servers, certs,
                                                      dns):
    sink = sink_at(servers, port=free_port_both(),
                   tls_context=tls_context(certs))
    dns.add("mx.test.example. A 127.0.0.1")
    relay.start("[mx.test.example]:%d" % sink.port, tls="verify",
                conf='resolver "%s"' % dns.addr)
    relay.send(["a@example.com"])
    d = relay.delivery("a@example.com")
    assert d["status"] == "deferred"
    assert "certificate" in d["reply"] and "verif" in d["reply"]
    assert sink.messages == []


# --- DNS -------------------------------------------------------------------

def test_mx_preference_is_followed(relay, servers, dns):
    port = free_port_both()
    best = sink_at(servers, "127.0.0.2", port)
    other = sink_at(servers, "127.0.0.1", port)
    dns.add("relay.test. MX 20 mx-b.relay.test.",
            "relay.test. MX 10 mx-a.relay.test.",
            "mx-a.relay.test. A 127.0.0.2",
            "mx-b.relay.test. A 127.0.0.1")
    relay.start("relay.test:%d" % port, conf='resolver "%s"' % dns.addr)
    relay.send(["a@example.com"])
    best.wait(1)
    d = relay.delivery("a@example.com")
    assert d["relay"] == "mx-a.relay.test[127.0.0.2]:%d" % port
    assert other.messages == []


def test_mx_unreachable_falls_back_to_the_next(relay, servers, dns):
    port = free_port_both()
    backup = sink_at(servers, "127.0.0.1", port)     # nothing on .2
    dns.add("relay.test. MX 10 mx-a.relay.test.",
            "relay.test. MX 20 mx-b.relay.test.",
            "mx-a.relay.test. A 127.0.0.2",
            "mx-b.relay.test. A 127.0.0.1")
    relay.start("relay.test:%d" % port, conf='resolver "%s"' % dns.addr)
    relay.send(["a@example.com"])
    backup.wait(1)
    assert relay.delivery("a@example.com")["relay"] == \
        "mx-b.relay.test[127.0.0.1]:%d" % port


def test_mx_4xx_goes_on_to_the_next(relay, servers, dns):
    port = free_port_both()
    sink_at(servers, "127.0.0.2", port, rcpt=lambda a: "450 4.2.0 busy")
    backup = sink_at(servers, "127.0.0.1", port)
    dns.add("relay.test. MX 10 mx-a.relay.test.",
            "relay.test. MX 20 mx-b.relay.test.",
            "mx-a.relay.test. A 127.0.0.2",
            "mx-b.relay.test. A 127.0.0.1")
    relay.start("relay.test:%d" % port, conf='resolver "%s"' % dns.addr)
    relay.send(["a@example.com"])
    backup.wait(1)
    lines = relay.deliveries("a@example.com")
    assert [l["status"] for l in lines[:2]] == ["deferred", "sent"]


def test_no_mx_uses_the_address_of_the_name(relay, servers, dns):
    port = free_port_both()
    sink = sink_at(servers, "127.0.0.1", port)
    dns.add("relay.test. A 127.0.0.1")
    relay.start("relay.test:%d" % port, conf='resolver "%s"' % dns.addr)
    relay.send(["a@example.com"])
    sink.wait(1)
    assert relay.delivery("a@example.com")["relay"] == \
        "relay.test[127.0.0.1]:%d" % port
    assert dns.asked("relay.test", "MX")


def test_brackets_mean_no_mx_lookup(relay, servers, dns):
    port = free_port_both()
    sink = sink_at(servers, "127.0.0.1", port)
    dns.add("relay.test. MX 10 elsewhere.relay.test.",
            "relay.test. A 127.0.0.1")
    relay.start("[relay.test]:%d" % port, conf='resolver "%s"' % dns.addr)
    relay.send(["a@example.com"])
    sink.wait(1)
    assert not dns.asked("relay.test", "MX")


def test_null_mx_is_bounced(relay, dns):
    dns.add("relay.test. MX 0 .")
    relay.start("relay.test:%d" % free_port_both(),
                conf='resolver "%s"' % dns.addr)
    relay.send(["a@example.com"])
    d = relay.delivery("a@example.com")
    assert d["status"] == "bounced"
    assert d["reply"].startswith("5.1.10 ") and "null MX" in d["reply"]


def test_nxdomain_is_bounced(relay, dns):
    relay.start("nowhere.test:%d" % free_port_both(),
                conf='resolver "%s"' % dns.addr)
    relay.send(["a@example.com"])
    d = relay.delivery("a@example.com")
    assert d["status"] == "bounced"
    assert "not found" in d["reply"]


def test_servfail_is_deferred(relay, dns):
    dns.rcode("relay.test", "SERVFAIL")
    relay.start("relay.test:%d" % free_port_both(),
                conf='resolver "%s"' % dns.addr)
    relay.send(["a@example.com"])
    d = relay.delivery("a@example.com")
    assert d["status"] == "deferred"
    assert d["reply"].startswith("4.4.3 ")


def test_unanswered_dns_is_deferred(relay, dns):
    dns.drop("relay.test")
    relay.start("relay.test:%d" % free_port_both(),
                conf='resolver "%s"' % dns.addr)
    relay.send(["a@example.com"])
    d = relay.delivery("a@example.com", timeout=60)
    assert d["status"] == "deferred"
    assert d["reply"].startswith("4.4.3 ") and "imeout" in d["reply"]


def test_resolver_change_applies_on_reload(relay, servers, dns):
    port = free_port_both()
    sink = sink_at(servers, "127.0.0.1", port)
    other = type(dns)()
    servers.append(other)
    for d in (dns, other):
        d.add("relay.test. A 127.0.0.1")
    relay.start("[relay.test]:%d" % port, conf='resolver "%s"' % dns.addr)
    relay.send(["a@example.com"])
    relay.delivery("a@example.com", "sent")
    assert dns.asked("relay.test") and not other.asked("relay.test")
    relay.reload('resolver "%s"' % other.addr)
    time.sleep(6)       # the idle session and the destination are gone
    relay.send(["b@example.com"])
    relay.delivery("b@example.com", "sent")
    assert other.asked("relay.test")
    assert sink.wait(2)


def test_equal_preferences_are_shuffled(relay, servers, dns):
    port = free_port_both()
    one = sink_at(servers, "127.0.0.1", port)
    two = sink_at(servers, "127.0.0.2", port)
    dns.add("mx-1.relay.test. A 127.0.0.1", "mx-2.relay.test. A 127.0.0.2")
    domains = ["d%d.relay.test" % i for i in range(16)]
    conf = ['resolver "%s"' % dns.addr]
    for d in domains:
        dns.add("%s. MX 10 mx-1.relay.test." % d,
                "%s. MX 10 mx-2.relay.test." % d)
        conf.append('domain "%s" {\n\ttype relay\n\tforward to "%s:%d" '
                    'tls none\n}' % (d, d, port))
    relay.start("[127.0.0.1]:%d" % port, conf="\n".join(conf))
    relay.send(["a@" + d for d in domains])
    wait_for(lambda: sum(len(m["rcpts"]) for m in one.messages + two.messages)
             >= 16, 30, what="16 deliveries")
    # Both exchangers get some: 2 ** -15 to fail by chance.
    assert one.messages and two.messages


def test_outbound_goes_by_the_recipient_domains_mx(relay, dns):
    # Port 25 is not ours to bind: the lookup is what is checked here.
    relay.start("[127.0.0.1]:%d" % free_port_both(),
                conf='resolver "%s"\ntrusted 127.0.0.0/8\n'
                     'outbound via mx tls none' % dns.addr)
    relay.send(["someone@nowhere.test"])
    d = relay.delivery("someone@nowhere.test")
    assert d["status"] == "bounced"
    assert d["reply"] == "5.1.2 domain nowhere.test not found"
    assert dns.asked("nowhere.test", "MX")


def test_mx_pointing_to_myself_is_a_loop(relay, dns):
    dns.add("relay.test. MX 10 mx.test.example.",
            "relay.test. MX 20 backup.relay.test.",
            "mx.test.example. A 127.0.0.1",
            "backup.relay.test. A 127.0.0.2")
    relay.start("relay.test:%d" % free_port_both(),
                conf='resolver "%s"' % dns.addr)
    relay.send(["a@example.com"])
    d = relay.delivery("a@example.com")
    assert d["status"] == "bounced"
    assert d["reply"].startswith("5.4.6 ") and "loops back" in d["reply"]


def test_reused_message_files_carry_only_their_own_message(relay, servers):
    """A delivered message's file is reused for a later one (queue_fs.c):
    each message still arrives byte-exact, whether shorter or longer
    than the one whose file it got, and the spool keeps at most 64."""
    sink = sink_at(servers, port=free_port_both())
    relay.start("[127.0.0.1]:%d" % sink.port)
    sizes = [200000, 300, 50000, 120000, 10, 80000, 150000, 700]
    sent = []
    for i, size in enumerate(sizes):
        line = b"message %02d %s\r\n" % (i, b"abcdefghij"[i % 10:] * 6)
        body = (line * (size // len(line) + 1))[:size]
        data = b"Subject: reuse %d\r\n\r\n" % i + body + b"\r\n"
        relay.send(["alice@example.com"], data)
        sent.append(data)
        sink.wait(i + 1)
    got = [strip_received(m["data"]) for m in sink.wait(len(sizes))]
    assert got == sent
    st = relay.daemon.ctl_json("show", "stats")
    assert st["queue.files_reused"] >= len(sizes) - 3
    free = os.path.join(relay.daemon.queue_dir, "free")
    wait_for(lambda: relay.daemon.status_json()["queue.messages"] == 0, 10,
             what="queue empty")
    assert 0 < len(os.listdir(free)) <= 64
