"""The log without -d: every process's lines reach syslog through the
parent, which keeps writing when syslogd is restarted or starts late
(splitmxd(8), LOGGING).  A test syslogd listens on a socket of its own,
given to splitmxd in SPLITMX_SYSLOG_SOCKET (for tests only)."""
import os
import re
import signal
import smtplib
import socket
import subprocess
import threading
import time

import pytest

from conftest import SPLITMXCTL, SPLITMXD, Sink, wait_for

PROCS = {"parent", "smtp", "lookup", "queue", "relay", "control", "filter"}
RECORD = re.compile(r"<(\d+)>(\w{3} [ \d]\d \d\d:\d\d:\d\d) splitmxd\[(\d+)\]: "
                    r"(\w+): (.*)", re.S)


class Syslogd:
    """A syslog daemon: a unix datagram socket at path, every record
    kept.  restart() is what a syslogd restart does: the socket goes
    away, and a new one comes at the same path."""

    def __init__(self, path, start=True):
        self.path = path
        self.records = []
        self.lock = threading.Lock()
        self.sock = None
        if start:
            self.start()

    def start(self):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.running = True
        self.thread = threading.Thread(target=self._loop, args=(self.sock,))
        self.thread.start()

    def _loop(self, sock):
        while self.running:
            try:
                data = sock.recv(65536)
            except socket.timeout:
                continue
            with self.lock:
                self.records.append(data.decode("utf-8", "replace"))

    def stop(self):
        if self.sock is None:
            return
        self.running = False
        self.thread.join()
        self.sock.close()
        self.sock = None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def restart(self, gap=0.5):
        self.stop()
        time.sleep(gap)
        self.start()

    def parsed(self, since=0):
        with self.lock:
            recs = self.records[since:]
        out = []
        for r in recs:
            m = RECORD.fullmatch(r)
            assert m, "not a syslog record: %r" % r
            out.append({"pri": int(m.group(1)), "pid": int(m.group(3)),
                        "proc": m.group(4), "text": m.group(5)})
        return out

    def count(self):
        with self.lock:
            return len(self.records)

    def wait(self, pred, since=0, timeout=15, what="records"):
        """The records from since on, once pred(records) holds."""
        def ok():
            rs = self.parsed(since)
            return rs if pred(rs) else None
        return wait_for(ok, timeout, what=what)


class Background:
    """splitmxd without -d: it goes into the background; its pid is in
    the pid file beside the control socket."""

    def __init__(self, smx, body, syslog_path):
        self.smx = smx
        self.text, self.port = smx.config(body)
        self.dir = smx.tmp
        self.conf = os.path.join(self.dir, "splitmx.conf")
        with open(self.conf, "w") as f:
            f.write(self.text)
        self.control = os.path.join(self.dir, "control.sock")
        self.env = dict(os.environ, SPLITMX_SYSLOG_SOCKET=syslog_path)
        self.pid = None

    def start(self):
        r = subprocess.run([SPLITMXD, "-v", "-f", self.conf], env=self.env,
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        self.stderr = r.stderr
        with open(os.path.join(self.dir, "splitmxd.pid")) as f:
            self.pid = int(f.read())
        wait_for(lambda: self.ctl("show", "status").returncode == 0, 10,
                 what="control socket")
        return self

    def ctl(self, *args):
        return subprocess.run([SPLITMXCTL, "-s", self.control, *args],
                              capture_output=True, text=True, timeout=60)

    def pids(self):
        import json
        r = self.ctl("--json", "show", "status")
        assert r.returncode == 0, r.stderr
        return {p["name"]: p["pid"] for p in json.loads(r.stdout)["processes"]}

    def kill(self):
        if self.pid is None:
            return
        kids = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open("/proc/%s/stat" % d) as f:
                        st = f.read()
                except OSError:
                    continue
                if int(st.rsplit(")", 1)[1].split()[1]) == self.pid:
                    kids.append(int(d))
        for p in [self.pid] + kids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.pid = None


@pytest.fixture
def syslogd(smx):
    s = Syslogd(os.path.join(smx.tmp, "log.sock"))
    yield s
    s.stop()


@pytest.fixture
def background(smx):
    started = []

    def make(body, syslog_path):
        b = Background(smx, body, syslog_path)
        started.append(b)
        return b
    yield make
    for b in started:
        b.kill()


def relay_to(sink):
    return ('domain "example.com" {{\n\ttype relay\n'
            '\tforward to "[127.0.0.1]:%d" tls none\n}}\n' % sink.port)


def send(port, n=1, tag="x"):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        for i in range(n):
            s.sendmail("a@sender.example", ["b@example.com"],
                       "Subject: %s %d\r\n\r\nbody\r\n" % (tag, i))


def test_every_process_logs_to_syslog_through_the_parent(smx, syslogd,
                                                          background):
    sink = Sink()
    try:
        d = background(relay_to(sink), syslogd.path).start()
        assert d.stderr == ""
        send(d.port)
        sink.wait(1)
        assert d.ctl("reload").returncode == 0
        recs = syslogd.wait(lambda rs: PROCS <= {r["proc"] for r in rs},
                            what="a line from every process")
        pids = d.pids()
        for r in recs:
            # mail facility, the writer's own pid, whoever relayed it
            assert r["pri"] >> 3 == 2, r
            if r["proc"] in pids:
                assert r["pid"] == pids[r["proc"]], r
        texts = [(r["proc"], r["text"]) for r in recs]
        assert any(p == "smtp" and "event=connect" in t for p, t in texts)
        assert any(p == "queue" and "event=queued" in t for p, t in texts), \
            texts
        assert ("parent", "startup version=0.1.0 generation=1 pid=%d"
                % d.pid) in texts
        assert d.ctl("stop").returncode == 0
        syslogd.wait(lambda rs: any(r["proc"] == "parent" and
                                    r["text"] == "terminated" for r in rs),
                     what="terminated")
    finally:
        sink.stop()


def test_syslogd_restarted_under_load_lines_keep_coming(smx, syslogd,
                                                        background):
    """The chrooted, sandboxed children cannot open /dev/log again; the
    parent can: after each restart of syslogd every process is heard
    again, mail keeps flowing, nothing breaks the sandbox."""
    sink = Sink()
    sent = [0]
    stop = threading.Event()

    def load():
        while not stop.is_set():
            send(d.port, 5, "load")
            sent[0] += 5
    try:
        d = background(relay_to(sink), syslogd.path).start()
        t = threading.Thread(target=load)
        t.start()
        try:
            for round in range(3):
                time.sleep(1)
                syslogd.restart(gap=0.5)
                since = syslogd.count()
                assert d.ctl("reload").returncode == 0
                syslogd.wait(
                    lambda rs: PROCS <= {r["proc"] for r in rs}, since,
                    what="every process after restart %d" % round)
                syslogd.wait(
                    lambda rs: [r for r in rs if r["proc"] == "relay" and
                                "event=delivery" in r["text"]],
                    since, what="deliveries logged after a restart")
        finally:
            stop.set()
            t.join()
        sink.wait(sent[0], timeout=60)
        recs = syslogd.parsed()
        assert not [r for r in recs if "forbidden system call" in r["text"]]
        # What the gap cost is said, not silently dropped.
        lost = [r for r in recs if r["proc"] == "parent" and
                re.fullmatch(r"log: \d+ lines? lost: no syslog daemon at "
                             + re.escape(syslogd.path), r["text"])]
        assert lost
        assert set(d.pids()) == PROCS
    finally:
        sink.stop()


def test_no_syslog_at_start_is_a_warning_then_found(smx, syslogd,
                                                     background):
    syslogd.stop()
    d = background("", syslogd.path).start()
    assert d.stderr == (
        "splitmxd: warning: no syslog daemon at %s (No such file or "
        "directory): log lines are lost until one listens there; start "
        "one, or run splitmxd -d to log to standard error\n"
        % syslogd.path)
    syslogd.start()
    assert d.ctl("reload").returncode == 0
    recs = syslogd.wait(lambda rs: PROCS <= {r["proc"] for r in rs},
                        what="every process once syslogd is there")
    first = recs[0]
    assert first["proc"] == "parent"
    assert re.fullmatch(r"log: \d+ lines lost: no syslog daemon at "
                        + re.escape(syslogd.path), first["text"]), first


def test_control_octets_are_escaped(smx, syslogd, background):
    """A refused reload's reason has a line per error: one record still."""
    d = background("", syslogd.path).start()
    with open(d.conf, "a") as f:
        f.write("limit recipients 0\nlimit sessions x\n")
    since = syslogd.count()
    assert d.ctl("reload").returncode == 1
    def refusal(rs):
        return [r for r in rs if r["proc"] == "parent" and
                r["text"].startswith("reload refused")]
    text = refusal(syslogd.wait(refusal, since, what="the refusal"))[0][
        "text"]
    assert "\n" not in text
    assert re.search(r"splitmx\.conf:\d+: .*\\n.*splitmx\.conf:\d+: ", text), \
        text


def test_a_dead_child_is_reported_through_syslog(smx, syslogd, background):
    d = background("", syslogd.path).start()
    victim = d.pids()["relay"]
    os.kill(victim, signal.SIGKILL)
    syslogd.wait(lambda rs: any(
        r["proc"] == "parent" and r["text"] ==
        "child relay terminated by signal 9, stopping" for r in rs),
        what="the parent's account")
    wait_for(lambda: not os.path.exists("/proc/%d" % d.pid), 10,
             what="parent gone")
    d.pid = None


def test_journal_stream_gets_priorities(smx, tmp_path):
    """Under systemd stderr is the journal's (JOURNAL_STREAM names it):
    each line starts with its syslog priority, as sd-daemon(3) says."""
    text, port = smx.config("")
    conf = tmp_path / "splitmx.conf"
    conf.write_text(text)
    log = open(tmp_path / "log", "wb")
    st = os.fstat(log.fileno())
    env = dict(os.environ, JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))
    p = subprocess.Popen([SPLITMXD, "-d", "-v", "-f", str(conf)], env=env,
                         stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: "privileges dropped" in
                 (tmp_path / "log").read_text() and "parent: startup" in
                 (tmp_path / "log").read_text(), 10, what="start")
    finally:
        p.terminate()
        p.wait(10)
        log.close()
    lines = (tmp_path / "log").read_text().splitlines()
    assert "<6>parent: startup version=0.1.0 generation=1 pid=%d" % p.pid \
        in lines
    assert any(re.fullmatch(r"<7>smtp: privileges dropped, root=.*", l)
               for l in lines)
    assert all(re.match(r"<[0-7]>\w+: ", l) for l in lines), lines
