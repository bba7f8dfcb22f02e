"""Shared fixtures: a real splitmxd on loopback ports, SMTP sinks, certs.

Every test builds its own world in a temporary directory and tears it
down by PID.  Nothing here talks to any address outside 127.0.0.0/8.
"""
import grp
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OBJ = os.path.join(ROOT, os.environ.get("SPLITMX_OBJ", "obj"))
SPLITMXD = os.path.join(OBJ, "splitmxd")
SPLITMXCTL = os.path.join(OBJ, "splitmxctl")
USER = "_splitmx"


def free_port(host="127.0.0.1"):
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for(pred, timeout=10.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise TimeoutError("timed out waiting for " + what)


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def ensure_user():
    """As root, the daemon needs its unprivileged user to exist."""
    if os.geteuid() != 0:
        return
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home",
                        "--home-dir", "/var/empty", "--shell",
                        "/usr/sbin/nologin", USER], check=True)


def ensure_accounts(users=(), groups=()):
    """As root, the system users and groups a configuration under test
    names (splitmxd -n checks that they exist).  They stay, like
    _splitmx: a run beside this one may be using them.  Returns the
    names still missing (when not root)."""
    missing = []
    for g in sorted(groups):
        try:
            grp.getgrnam(g)
        except KeyError:
            if os.geteuid() != 0:
                missing.append(g)
                continue
            subprocess.run(["groupadd", "--system", g], capture_output=True)
            try:
                grp.getgrnam(g)
            except KeyError:
                missing.append(g)
    for u in sorted(users):
        try:
            pwd.getpwnam(u)
        except KeyError:
            if os.geteuid() != 0:
                missing.append(u)
                continue
            subprocess.run(["useradd", "--system", "--no-create-home",
                            "--home-dir", "/nonexistent", "--shell",
                            "/usr/sbin/nologin", "--user-group", u],
                           capture_output=True)
            try:
                pwd.getpwnam(u)
            except KeyError:
                missing.append(u)
    return missing


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """A self-signed certificate and key for mx.test.example."""
    d = tmp_path_factory.mktemp("pki")
    crt, key = d / "mx.crt", d / "mx.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-days", "2", "-subj", "/CN=mx.test.example",
                    "-addext", "subjectAltName=DNS:mx.test.example"],
                   check=True, capture_output=True)
    os.chmod(d, 0o755)
    os.chmod(crt, 0o644)
    os.chmod(key, 0o600)
    return str(crt), str(key)


class Daemon:
    """One splitmxd (parent and children) started with -d -v."""

    def __init__(self, workdir, conf_text, port):
        self.dir = workdir
        self.port = port
        self.conf_path = os.path.join(workdir, "splitmx.conf")
        self.control = os.path.join(workdir, "control.sock")
        self.status = os.path.join(workdir, "status.sock")
        self.queue_dir = os.path.join(workdir, "queue")
        self.log_path = os.path.join(workdir, "splitmxd.log")
        self.proc = None
        with open(self.conf_path, "w") as f:
            f.write(conf_text)

    @property
    def pid(self):
        return self.proc.pid

    def start(self, wait_port=True, timeout=10, nofile=None):
        """nofile: a descriptor limit (soft and hard) to start under."""
        def limit():
            import resource
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        since = len(self.log())
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [SPLITMXD, "-d", "-v", "-f", self.conf_path],
            stdin=subprocess.DEVNULL, stdout=self.logf, stderr=self.logf,
            preexec_fn=limit if nofile else None)
        try:
            wait_for(lambda: self.proc.poll() is not None or (
                os.path.exists(self.control) and self.ctl_ok()),
                timeout, what="control socket")
            if self.proc.poll() is not None:
                raise RuntimeError("splitmxd exited %d:\n%s" %
                                   (self.proc.returncode, self.log()))
            # Every child has dropped privileges and is in its loop.
            wait_for(lambda: self.proc.poll() is not None or
                     self.log()[since:].count("privileges dropped") >= 6,
                     timeout, what="six children ready")
            if wait_port and self.port:
                wait_for(lambda: port_open(self.port), timeout,
                         what="smtp port %d" % self.port)
                # The probe's session is over, so that a test that
                # counts sessions (stop's report) never counts it.
                def probe_done():
                    new = self.log()[since:]
                    return new.count("event=disconnect ") >= \
                        new.count("event=connect ")
                wait_for(probe_done, timeout,
                         what="the port probe's session to end")
        except Exception:
            self.kill9()
            raise
        return self

    def ctl_ok(self):
        return self.ctl("show", "status").returncode == 0

    def ctl(self, *args, json_out=False, timeout=30, user=None):
        cmd = [SPLITMXCTL, "-s", self.control]
        if json_out:
            cmd.append("--json")
        cmd += list(args)
        kw = {}
        if user is not None:
            # As that user alone: its own primary group, no root groups.
            pw = pwd.getpwnam(user)
            kw.update(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])
        return subprocess.run(cmd, capture_output=True, text=True,
                              timeout=timeout, **kw)

    def ctl_json(self, *args):
        r = self.ctl(*args, json_out=True)
        assert r.returncode == 0, r.stderr + r.stdout
        return json.loads(r.stdout)

    def status_json(self):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(self.status)
            data = b""
            while True:
                b = s.recv(65536)
                if not b:
                    break
                data += b
        return json.loads(data)

    def children(self):
        """PIDs of the six children, from /proc."""
        out = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    st = f.read()
            except OSError:
                continue
            ppid = int(st.rsplit(")", 1)[1].split()[1])
            if ppid == self.proc.pid:
                out.append(int(d))
        return out

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_log(self, pattern, timeout=10):
        rx = re.compile(pattern)
        return wait_for(lambda: rx.search(self.log()), timeout,
                        what="log line /%s/" % pattern)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=10):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
        self.logf.close()
        return self.proc.returncode

    def kill9(self):
        """SIGKILL the parent and every child at once, like a crash."""
        if self.proc is None:
            return
        pids = [self.proc.pid] + self.children()
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        # Children now belong to init; make sure they are gone.
        for p in pids[1:]:
            wait_for(lambda: not os.path.exists("/proc/%d" % p) or
                     _is_zombie(p), 5, what="child %d gone" % p)
        self.logf.close()


def _is_zombie(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def unrelated_anchor(workdir):
    """A DNSSEC trust anchor for a name no test uses.

    The loopback DNS servers of the tests sign nothing: under the root's
    anchor every answer would be bogus.  Under this one, answers for
    .test names are insecure, as they were before splitmx validated."""
    path = os.path.join(workdir, "trust-anchor")
    with open(path, "w") as f:
        f.write("unused.invalid. IN DS 1 13 2 " + "00" * 32 + "\n")
    os.chmod(path, 0o644)
    return path


class Splitmx:
    """Factory: smx.start(conf_body) -> a running Daemon.

    The body may use {port} (the SMTP listener), {tmp} (the work
    directory), {cert} and {key}.  hostname, queue, control socket and
    status socket lines are added unless the body has its own; a
    listener on 127.0.0.1:{port} is added unless the body has a listen.
    """

    def __init__(self, certs):
        # Short paths: a unix socket path must fit in 108 bytes.
        self.tmp = tempfile.mkdtemp(prefix="smx", dir="/tmp")
        self.certs = certs
        self.daemons = []
        self.n = 0
        ensure_user()

    def config(self, body="", port=None, workdir=None):
        port = port or free_port()
        workdir = workdir or str(self.tmp)
        os.chmod(workdir, 0o755)
        cert, key = self.certs
        body = body.format(port=port, tmp=workdir, cert=cert, key=key)
        head = []
        if not re.search(r"^\s*hostname\b", body, re.M):
            head.append('hostname "mx.test.example"')
        if not re.search(r"^\s*queue\b", body, re.M):
            head.append('queue "%s/queue"' % workdir)
        if not re.search(r"^\s*control socket\b", body, re.M):
            head.append('control socket "%s/control.sock"' % workdir)
        if not re.search(r"^\s*status socket\b", body, re.M):
            head.append('status socket "%s/status.sock"' % workdir)
        if not re.search(r"^\s*listen\b", body, re.M):
            head.append("listen on 127.0.0.1 port %d" % port)
        if not re.search(r"^\s*domain\b", body, re.M):
            head.append('domain "example.com" {\n\ttype relay\n'
                        '\tforward to "[127.0.0.1]:9"\n}')
        if not re.search(r"^\s*trust-anchor\b", body, re.M):
            head.append('trust-anchor "%s"' % unrelated_anchor(workdir))
        return "\n".join(head) + "\n" + body + "\n", port

    def start(self, body="", port=None, wait_port=True, workdir=None,
              nofile=None):
        text, port = self.config(body, port, workdir)
        d = Daemon(workdir or str(self.tmp), text, port)
        self.daemons.append(d)
        return d.start(wait_port=wait_port, nofile=nofile)

    def cleanup(self):
        for d in self.daemons:
            if d.running():
                d.kill9()
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture
def smx(certs):
    s = Splitmx(certs)
    yield s
    s.cleanup()


class Sink:
    """An SMTP server (aiosmtpd) on loopback that keeps what it gets."""

    def __init__(self, host="127.0.0.1", port=None, handler=None):
        from aiosmtpd.controller import Controller
        self.messages = []
        self.lock = threading.Lock()
        self.port = port or free_port(host)
        self.host = host
        self.handler = handler or self
        self.controller = Controller(self.handler, hostname=host,
                                     port=self.port)
        self.controller.start()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append({
                "from": envelope.mail_from,
                "rcpts": list(envelope.rcpt_tos),
                "data": envelope.original_content or envelope.content,
                "peer": session.peer,
            })
        return "250 2.0.0 OK"

    def wait(self, n, timeout=20):
        wait_for(lambda: len(self.messages) >= n, timeout,
                 what="%d messages at the sink" % n)
        return self.messages

    def stop(self):
        self.controller.stop()


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.stop()


# ---------------------------------------------------------------------------
# DNS fixture (relay tests): a loopback DNS server built on python3-dnslib,
# for MX and address lookups.  Point splitmx at it with
#     resolver "{dns.addr}"
# ---------------------------------------------------------------------------

def free_udp_tcp_port(host="127.0.0.1"):
    """A port free for both UDP and TCP (DNS answers on both)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind((host, 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free UDP+TCP port")


class DnsServer:
    """A DNS server on 127.0.0.1 (UDP and TCP, one port) that answers
    from the records a test gives it, authoritatively:

        dns.add("relay.test. MX 10 mx1.relay.test.",
                "mx1.relay.test. A 127.0.0.2")

    A name that has no record at all is NXDOMAIN, a name with records of
    other types only is NODATA.  dns.rcode(name, "SERVFAIL") answers a
    name with that rcode, dns.drop(name) never answers it.  queries
    lists the (name, type) pairs asked, in order.  Only 127.0.0.0/8
    addresses belong in the records."""

    def __init__(self, host="127.0.0.1"):
        from dnslib.server import DNSLogger, DNSServer as _Server
        self.records = []
        self.rcodes = {}
        self.dropped = set()
        self.queries = []
        self.lock = threading.Lock()
        self.port = free_udp_tcp_port(host)
        self.addr = "%s:%d" % (host, self.port)
        quiet = DNSLogger(log="-request,-reply,-truncated,-error,-recv,"
                          "-send,-data", logf=lambda s: None)
        self.servers = [_Server(self, address=host, port=self.port,
                                tcp=tcp, logger=quiet)
                        for tcp in (False, True)]
        for s in self.servers:
            s.start_thread()

    @staticmethod
    def _name(n):
        return str(n).lower().rstrip(".")

    def add(self, *lines):
        from dnslib import RR
        for line in lines:
            with self.lock:
                self.records.extend(RR.fromZone(line, ttl=60))

    def rcode(self, name, rcode):
        with self.lock:
            self.rcodes[self._name(name)] = rcode

    def drop(self, name):
        with self.lock:
            self.dropped.add(self._name(name))

    def asked(self, name, qtype=None):
        with self.lock:
            return [q for q in self.queries if q[0] == self._name(name) and
                    (qtype is None or q[1] == qtype)]

    def resolve(self, request, handler):
        from dnslib import QTYPE, RCODE
        from dnslib.dns import DNSError
        q = request.q
        name, qtype = self._name(q.qname), QTYPE[q.qtype]
        with self.lock:
            self.queries.append((name, qtype))
            if name in self.dropped:
                # dnslib sends nothing when the resolver raises this.
                raise DNSError("dropped " + name)
            reply = request.reply()
            reply.header.aa = 1
            if name in self.rcodes:
                reply.header.rcode = getattr(RCODE, self.rcodes[name])
                return reply
            found = [r for r in self.records if self._name(r.rname) == name]
            if not found:
                reply.header.rcode = RCODE.NXDOMAIN
                return reply
            for r in found:
                if r.rtype == q.qtype:
                    reply.add_answer(r)
        return reply

    def stop(self):
        for s in self.servers:
            s.server.shutdown()
            s.server.server_close()


@pytest.fixture
def dns():
    d = DnsServer()
    yield d
    d.stop()
