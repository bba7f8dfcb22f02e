"""splitmxctl stop: sessions finish their command and get 421, the
deliveries out come back, the daemon answers, cleans up and exits 0;
nothing that was acknowledged is lost (splitmxd(8), STOP)."""
import asyncio
import os
import re
import socket
import threading
import time

import pytest

from conftest import Sink, wait_for

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
REPORT_RE = re.compile(r"smtp: (\d+) sessions? closed \((\d+) after finishing "
                       r"a command, (\d+) at the deadline\)")
OUT_RE = re.compile(r"queue: (\d+) deliver(?:y was|ies were) out at the "
                    r"stop, (\d+) still out")


class Client:
    """A raw SMTP client: the tests need to stop half way through."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buf = b""

    def line(self, timeout=30):
        self.s.settimeout(timeout)
        while b"\r\n" not in self.buf:
            b = self.s.recv(4096)
            if not b:
                raise EOFError(self.buf)
            self.buf += b
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode()

    def reply(self, timeout=30):
        """The last line of a (multi-line) reply."""
        while True:
            line = self.line(timeout)
            if line[3:4] != "-":
                return line

    def cmd(self, text, timeout=30):
        self.send(text + "\r\n")
        return self.reply(timeout)

    def send(self, text):
        self.s.sendall(text.encode())

    def closed(self, timeout=10):
        """True once the server has closed the connection."""
        self.s.settimeout(timeout)
        try:
            return self.s.recv(4096) == b""
        except ConnectionResetError:
            return True

    def close(self):
        self.s.close()


def greeted(port):
    c = Client(port)
    assert c.reply().startswith("220 ")
    assert c.cmd("EHLO client.example").startswith("250 ")
    return c


def stop_in_background(d, *args):
    """splitmxctl stop returns when the daemon is done: run it aside."""
    out = {}

    def run():
        out["r"] = d.ctl(*args, "stop", timeout=60)
    t = threading.Thread(target=run)
    t.start()
    return t, out


def conf_to(sink):
    return ('domain "example.com" {{\n\ttype relay\n'
            '\tforward to "[127.0.0.1]:%d" tls none\n}}\n' % sink.port)


def test_stop_exits_0_and_removes_its_files(smx):
    d = smx.start()
    pidfile = os.path.join(d.dir, "splitmxd.pid")
    assert open(pidfile).read() == "%d\n" % d.pid
    r = d.ctl("stop")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("splitmxd stopped\n")
    m = REPORT_RE.search(r.stdout)
    assert m and m.groups() == ("0", "0", "0"), r.stdout
    assert OUT_RE.search(r.stdout).groups() == ("0", "0"), r.stdout
    assert d.proc.wait(10) == 0
    for f in (d.control, d.status, pidfile):
        assert not os.path.exists(f), f
    log = d.log()
    assert "parent: stop requested by uid=0" in log
    assert "parent: stopped" in log
    assert d.children() == []


def test_stop_json(smx):
    import json
    d = smx.start()
    r = d.ctl("stop", json_out=True)
    assert r.returncode == 0, r.stderr
    js = json.loads(r.stdout)
    assert js["stop"] == "done"
    assert js["message"].startswith("splitmxd stopped\n")
    assert d.proc.wait(10) == 0


@root_only
def test_stop_needs_root_or_the_admin_group(smx):
    d = smx.start('control socket "{tmp}/control.sock" group "nogroup"')
    r = d.ctl("stop", user="nobody")
    assert r.returncode == 1
    assert "permission denied" in r.stderr
    assert d.running() and d.ctl_ok()
    d.wait_log(r"control uid=\d+ refused=stop")


@root_only
def test_stop_by_the_admin_group(smx):
    d = smx.start('control socket "{tmp}/control.sock" group "nogroup"\n'
                  'control admin group "nogroup"')
    r = d.ctl("stop", user="nobody")
    assert r.returncode == 0, r.stderr
    assert d.proc.wait(10) == 0


def test_stop_idle_session_421_busy_session_finishes_then_421(smx):
    """One session waits for its next command, the other is in DATA: the
    first is told at once, the second finishes its message (250, on
    disk), then hears 421 at its next command.  The message survives
    the stop and is delivered after the next start."""
    sink = Sink()
    try:
        d = smx.start(conf_to(sink))
        idle = greeted(d.port)
        busy = greeted(d.port)
        assert busy.cmd("MAIL FROM:<a@sender.example>").startswith("250")
        assert busy.cmd("RCPT TO:<b@example.com>").startswith("250")
        assert busy.cmd("DATA").startswith("354")
        busy.send("Subject: stopping\r\n\r\nhalf of it\r\n")

        t, out = stop_in_background(d)
        r = idle.reply(10)
        assert r.startswith("421 4.3.2 "), r
        assert "shutting down" in r
        assert idle.closed()
        d.wait_log("smtp: event=stopping sessions=2")
        # Still ours: the daemon waits for the end of the message.
        time.sleep(0.5)
        assert t.is_alive()
        busy.send("the other half\r\n.\r\n")
        r = busy.reply(10)
        assert r.startswith("250 "), r
        qid = re.search(r"queued as ([0-9a-f]{24})", r).group(1)
        r = busy.cmd("NOOP", 10)
        assert r.startswith("421 4.3.2 "), r
        assert busy.closed()
        t.join(30)
        assert out["r"].returncode == 0, out["r"].stderr
        assert REPORT_RE.search(out["r"].stdout).groups() == ("2", "2", "0")
        assert d.proc.wait(10) == 0
        assert sink.messages == []      # the relay was paused by the stop
        assert os.path.exists(os.path.join(d.queue_dir, "queue",
                                           qid + ".msg"))
        # Nothing lost: the next start delivers it.
        d.start()
        msgs = sink.wait(1)
        assert b"the other half" in msgs[0]["data"]
        assert msgs[0]["rcpts"] == ["b@example.com"]
    finally:
        sink.stop()


def test_stop_closes_a_stalled_session_at_the_deadline(smx):
    """A client that stops sending in the middle of DATA is cut 10 s
    after the stop began; its message is not acknowledged, not queued."""
    d = smx.start()
    c = greeted(d.port)
    assert c.cmd("MAIL FROM:<a@sender.example>").startswith("250")
    assert c.cmd("RCPT TO:<b@example.com>").startswith("250")
    assert c.cmd("DATA").startswith("354")
    c.send("Subject: stalled\r\n\r\nand then nothing\r\n")
    began = time.monotonic()
    t, out = stop_in_background(d)
    r = c.reply(30)
    took = time.monotonic() - began
    assert r.startswith("421 4.3.2 "), r
    assert 9 <= took < 20, took
    assert c.closed()
    t.join(30)
    assert out["r"].returncode == 0, out["r"].stderr
    assert REPORT_RE.search(out["r"].stdout).groups() == ("1", "0", "1")
    assert d.proc.wait(10) == 0
    assert os.listdir(os.path.join(d.queue_dir, "queue")) == []
    assert "event=disconnect reason=shutdown" in d.log()


class SlowHandler:
    """A next hop that takes its time to answer the end of data."""

    def __init__(self, delay):
        self.delay = delay
        self.messages = []
        self.started = threading.Event()

    async def handle_DATA(self, server, session, envelope):
        self.started.set()
        await asyncio.sleep(self.delay)
        self.messages.append(envelope.content)
        return "250 2.0.0 OK"


def test_stop_waits_for_the_delivery_under_way(smx):
    """A delivery out at the stop comes back before the daemon exits:
    delivered once, done with, not tried again at the next start."""
    handler = SlowHandler(2)
    sink = Sink(handler=handler)
    try:
        d = smx.start(conf_to(sink))
        c = greeted(d.port)
        assert c.cmd("MAIL FROM:<a@sender.example>").startswith("250")
        assert c.cmd("RCPT TO:<b@example.com>").startswith("250")
        assert c.cmd("DATA").startswith("354")
        r = c.cmd("Subject: slow\r\n\r\nslow\r\n.")
        assert r.startswith("250 "), r
        c.cmd("QUIT")
        assert handler.started.wait(20)
        r = d.ctl("stop", timeout=60)
        assert r.returncode == 0, r.stderr
        assert OUT_RE.search(r.stdout).groups() == ("1", "0"), r.stdout
        assert len(handler.messages) == 1
        assert d.proc.wait(10) == 0
        assert os.listdir(os.path.join(d.queue_dir, "queue")) == []
        d.start()
        time.sleep(1)
        assert len(handler.messages) == 1
    finally:
        sink.stop()


def test_reload_while_stopping_is_refused(smx):
    d = smx.start()
    c = greeted(d.port)
    assert c.cmd("MAIL FROM:<a@sender.example>").startswith("250")
    assert c.cmd("RCPT TO:<b@example.com>").startswith("250")
    assert c.cmd("DATA").startswith("354")
    t, out = stop_in_background(d)
    d.wait_log("smtp: event=stopping")
    r = d.ctl("reload")
    assert r.returncode == 1
    assert "stopping" in r.stderr
    c.send(".\r\n")
    assert c.reply().startswith("250 ")
    t.join(30)
    assert out["r"].returncode == 0
    assert d.proc.wait(10) == 0


def test_sigterm_still_stops_at_once(smx):
    d = smx.start()
    c = greeted(d.port)
    assert c.cmd("MAIL FROM:<a@sender.example>").startswith("250")
    began = time.monotonic()
    assert d.stop() == 0
    assert time.monotonic() - began < 5
    assert c.closed()
    wait_for(lambda: d.children() == [], 5, what="children gone")
