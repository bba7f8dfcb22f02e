"""Real and misbehaving milters for regress/test_milter.py, started on
loopback (or a unix socket) in a private directory and stopped by PID:
OpenDKIM (opendkim), rspamd (its proxy worker in milter mode, a private
configuration), a python3-milter test milter (milter/pymilter_server.py)
and raw-socket milters that break the protocol (milter/bad_milter.py).

Run under /usr/bin/python3: Debian's python3-milter and python3-dkim live
there.  Nothing here talks to an address outside loopback: OpenDKIM
verifies with TestPublicKeys, rspamd's resolver is 127.0.0.1.
"""
import os
import pwd
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "milter")
PY = "/usr/bin/python3"

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def make_message(subject="hello", body="Hello Bob.\n", frm="Alice <alice@example.test>",
                 to="Bob <bob@example.net>", extra_headers=(), msgid=None):
    """A small RFC 5322 message as bytes with CRLF line ends."""
    msgid = msgid or "<%d.%d@example.test>" % (os.getpid(), int(time.time() * 1e6))
    lines = ["From: " + frm, "To: " + to, "Subject: " + subject,
             "Date: Mon, 01 Jan 2024 00:00:00 +0000", "Message-ID: " + msgid]
    lines += list(extra_headers)
    text = "\r\n".join(lines) + "\r\n\r\n" + body.replace("\r\n", "\n").replace("\n", "\r\n")
    return text.encode()


def gtube_message(**kw):
    return make_message(subject="gtube test", body=GTUBE + "\n", **kw)


# ------------------------------------------------------------------ ports
def free_port(host="127.0.0.1"):
    """A currently free high TCP port on loopback (kernel-chosen ephemeral port)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def port_open(port, host="127.0.0.1", timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def milter_handshake(port, host="127.0.0.1", timeout=5.0, unix=None):
    """Send SMFIC_OPTNEG v6 (all actions, all protocol flags) and return
    (version, actions, protocol, raw_rest) of the reply.  Raises OSError/ValueError."""
    if unix:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(unix)
    else:
        s = socket.create_connection((host, port), timeout=timeout)
    with s:
        s.settimeout(timeout)
        s.sendall(struct.pack("!IcIII", 13, b"O", 6, 0x1FF, 0x1FFFFF))
        hdr = _recv_exact(s, 4)
        (ln,) = struct.unpack("!I", hdr)
        if ln < 13 or ln > 65536:
            raise ValueError("bad OPTNEG reply length %d" % ln)
        body = _recv_exact(s, ln)
        if body[:1] != b"O":
            raise ValueError("reply %r is not OPTNEG" % body[:1])
        v, a, p = struct.unpack("!III", body[1:13])
        # polite goodbye: SMFIC_QUIT (no reply)
        try:
            s.sendall(struct.pack("!Ic", 1, b"Q"))
        except OSError:
            pass
        return v, a, p, body[13:]


def _recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        c = s.recv(n - len(buf))
        if not c:
            raise ValueError("EOF after %d bytes" % len(buf))
        buf += c
    return buf


# ------------------------------------------------------------------ base class
class ManagedProcess:
    """A daemon run in the foreground under our control."""
    name = "proc"
    start_timeout = 20.0
    handshake = True          # readiness = OPTNEG answered (False: port accepts)

    def __init__(self, workdir=None, port=None, host="127.0.0.1"):
        self._own_dir = workdir is None
        self.dir = workdir or tempfile.mkdtemp(prefix="milter-%s-" % self.name)
        os.makedirs(self.dir, exist_ok=True)
        self.host = host
        self.port = port or free_port(host)
        self.proc = None
        self.log_path = os.path.join(self.dir, "%s.out" % self.name)
        self.startup_seconds = None
        self.optneg = None
        self._extra_dirs = []

    # subclasses
    def prepare(self):
        pass

    def argv(self):
        raise NotImplementedError

    def env(self):
        return None

    @property
    def spec(self):
        """splitmx.conf form (SPEC section 9): inet:HOST:PORT"""
        return "inet:%s:%d" % (self.host, self.port)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def start(self, timeout=None):
        timeout = timeout or self.start_timeout
        self.prepare()
        logf = open(self.log_path, "ab")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(self.argv(), cwd=self.dir, stdin=subprocess.DEVNULL,
                                     stdout=logf, stderr=subprocess.STDOUT,
                                     env=self.env(), start_new_session=True)
        logf.close()
        deadline = t0 + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with %s during startup:\n%s" % (
                    self.name, self.proc.returncode, self.log_text()[-3000:]))
            try:
                if self.handshake:
                    self.optneg = milter_handshake(self.port, self.host, timeout=2,
                                                   unix=getattr(self, "unix", None))
                    break
                if port_open(self.port, self.host):
                    break
            except (OSError, ValueError) as e:
                last = e
            time.sleep(0.1)
        else:
            self.stop()
            raise RuntimeError("%s not ready on port %d after %.0fs (%r):\n%s" % (
                self.name, self.port, timeout, last, self.log_text()[-3000:]))
        self.startup_seconds = time.monotonic() - t0
        return self

    graceful_stop = True      # False: SIGKILL at once (test-only daemons)

    def stop(self, timeout=10.0, graceful=None):
        """SIGTERM to our PID, wait up to `timeout`, then SIGKILL the process group
        we created (start_new_session).  libmilter daemons (opendkim, pymilter) take
        ~5 s to exit on SIGTERM; rspamd ~0.3 s.  Returns the seconds it took."""
        if not self.proc:
            return 0.0
        t0 = time.monotonic()
        if graceful is None:
            graceful = self.graceful_stop
        if graceful and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        # leftovers (rspamd workers, a hung libmilter thread): kill the group we created
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        return time.monotonic() - t0

    def cleanup(self):
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        for d in self._extra_dirs:
            shutil.rmtree(d, ignore_errors=True)

    def __enter__(self):
        if not self.alive():
            self.start()
        return self

    def __exit__(self, *exc):
        self.cleanup()


# ------------------------------------------------------------------ OpenDKIM
class OpenDKIM(ManagedProcess):
    """opendkim -f -x CONF, signing for `domain` mail from InternalHosts clients.

    mode: "sv" (sign internal, verify others) or "s".
    keytable: False -> Domain/Selector/KeyFile (key read at startup, before any
              UserID switch); True -> KeyTable/SigningTable (key read per message).
    user: None -> runs as the calling user; "opendkim" (root only) -> UserID opendkim
          (then with keytable=True the key and its directories must be readable by
          that user: the fixture chowns the key and chmods the directory).
    Verifies offline: .verify(msg) (python3-dkim, dnsfunc from the generated key)
    and .verify_with_opendkim(msg) (opendkim -t with TestPublicKeys).
    """
    name = "opendkim"
    start_timeout = 15.0

    def __init__(self, workdir=None, port=None, domain="example.test", selector="sel1",
                 mode="sv", internal_hosts=("127.0.0.1", "::1"), keytable=False,
                 user=None, canonicalization="relaxed/relaxed", bits=2048, extra=""):
        super().__init__(workdir, port)
        self.domain, self.selector, self.mode = domain, selector, mode
        self.internal_hosts = list(internal_hosts)
        self.keytable, self.user = keytable, user
        self.canonicalization, self.bits, self.extra = canonicalization, bits, extra
        self.conf_path = os.path.join(self.dir, "opendkim.conf")
        self.key_path = os.path.join(self.dir, "%s.private" % selector)
        self.pidfile = os.path.join(self.dir, "opendkim.pid")
        self.testkeys_path = os.path.join(self.dir, "testkeys")
        self.txt = None      # public key TXT record value "v=DKIM1; h=sha256; k=rsa; p=..."

    @property
    def dns_name(self):
        return "%s._domainkey.%s" % (self.selector, self.domain)

    def prepare(self):
        if not os.path.exists(self.key_path):
            subprocess.run(["opendkim-genkey", "-b", str(self.bits), "-d", self.domain,
                            "-s", self.selector, "-D", self.dir], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(os.path.join(self.dir, "%s.txt" % self.selector)) as f:
            self.txt = "".join(re.findall(r'"([^"]*)"', f.read()))
        with open(self.testkeys_path, "w") as f:
            f.write("%s %s\n" % (self.dns_name, self.txt))
        hosts = ",".join(self.internal_hosts)
        lines = [
            "Syslog no", "Background no", "Mode %s" % self.mode,
            "Socket inet:%d@%s" % (self.port, self.host),
            "PidFile %s" % self.pidfile,
            "Canonicalization %s" % self.canonicalization,
            "InternalHosts %s" % hosts, "ExternalIgnoreList %s" % hosts,
            # tmp dirs are under world-writable /tmp: opendkim refuses keys there
            # ("/tmp can be read or written by other users") unless this is off
            "RequireSafeKeys no",
            # never query the system resolver (it is off-loopback here): verification
            # uses TestPublicKeys, and anything else goes to 127.0.0.1:53 and fails
            "Nameservers 127.0.0.1",
            "TestPublicKeys %s" % self.testkeys_path,
        ]
        if self.keytable:
            kt = os.path.join(self.dir, "keytable")
            st = os.path.join(self.dir, "signingtable")
            key = self.key_path
            if self.user and os.geteuid() == 0:
                # KeyTable keys are read per message, after the switch to UserID:
                # the key and every directory above it must be reachable by that
                # user (pytest's tmp dirs sit under a 0700 /tmp/pytest-of-root).
                pw = pwd.getpwnam(self.user)
                kd = tempfile.mkdtemp(prefix="milter-opendkim-key-")
                os.chmod(kd, 0o711)
                self._extra_dirs.append(kd)
                key = os.path.join(kd, os.path.basename(self.key_path))
                shutil.copyfile(self.key_path, key)
                os.chmod(key, 0o600)
                os.chown(key, pw.pw_uid, pw.pw_gid)
            with open(kt, "w") as f:
                f.write("%s %s:%s:%s\n" % (self.dns_name, self.domain, self.selector,
                                           key))
            with open(st, "w") as f:
                f.write("*@%s %s\n" % (self.domain, self.dns_name))
            lines += ["KeyTable %s" % kt, "SigningTable refile:%s" % st]
        else:
            lines += ["Domain %s" % self.domain, "Selector %s" % self.selector,
                      "KeyFile %s" % self.key_path]
        if self.user:
            # KeyFile (keytable=False) is read at startup while still root: fine as is
            lines.append("UserID %s" % self.user)
        if self.extra:
            lines.append(self.extra)
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def argv(self):
        return ["opendkim", "-f", "-x", self.conf_path]

    # --- offline verification
    def dnsfunc(self, name, timeout=5):
        """For dkim.verify(msg, dnsfunc=od.dnsfunc): answers only our selector."""
        if isinstance(name, bytes):
            name = name.decode()
        if name.rstrip(".").lower() == self.dns_name.lower():
            return self.txt.encode()
        return None

    def verify(self, message):
        """python3-dkim verification of every DKIM-Signature; True if valid."""
        import dkim
        return bool(dkim.verify(message, dnsfunc=self.dnsfunc))

    def verify_with_opendkim(self, message):
        """opendkim -t (test mode, TestPublicKeys, no DNS).  Returns (ok, stderr)."""
        path = os.path.join(self.dir, "verify-%d.eml" % time.time_ns())
        conf = os.path.join(self.dir, "verify.conf")
        with open(conf, "w") as f:
            f.write("Syslog no\nMode v\nRequireSafeKeys no\nNameservers 127.0.0.1\n"
                    "TestPublicKeys %s\n" % self.testkeys_path)
        with open(path, "wb") as f:
            f.write(message)
        r = subprocess.run(["opendkim", "-x", conf, "-t", path], capture_output=True,
                           timeout=30)
        out = (r.stdout + r.stderr).decode("utf-8", "replace")
        return (" succeeded" in out and " failed" not in out), out


# ------------------------------------------------------------------ rspamd
class Rspamd(ManagedProcess):
    """rspamd -f -c PRIVATE.conf: one rspamd_proxy worker in milter mode with
    self_scan (no normal/controller worker), no redis, DNS pointed at 127.0.0.1,
    loopback clients NOT exempt from milter_headers (skip_local = false).

    tld: "small" (default) uses a 6-line public-suffix list so startup takes ~1 s;
         "full" uses Debian's effective_tld_names.dat (first start ~11 s of one core
         to compile it with hyperscan, then cached in hs_cache_dir).
    hs_cache_dir: where compiled hyperscan databases go (default: inside the private
         dir; set env SPLITMX_RSPAMD_HS_CACHE to share a cache between runs).
    reject_mode: "reject" (REPLYCODE 554 5.7.1 ...), "discard" (SMFIR_DISCARD) or
          "quarantine" (SMFIR_QUARANTINE + ACCEPT) for messages rspamd rejects.
    user: None -> as root runs with --insecure (-i, workers stay root); as a normal
          user runs as that user.  "_rspamd" (root only) -> -u _rspamd -g _rspamd and
          the private dir is chowned to it.
    """
    name = "rspamd"
    start_timeout = 60.0

    DEFAULT_HEADERS = ("x-spamd-result", "x-rspamd-server", "x-rspamd-queue-id",
                       "x-rspamd-action", "authentication-results", "x-spam-status",
                       "x-spam-level", "x-spamd-bar", "remove-spam-flag")

    def __init__(self, workdir=None, port=None, tld="small", hs_cache_dir=None,
                 user=None, skip_local=False, skip_authenticated=False,
                 headers=DEFAULT_HEADERS, extended_spam_headers=True,
                 reject_message="Spam message rejected", reject_score=15,
                 add_header_score=6, greylist_score=4, reject_mode="reject",
                 rules=True, extra=""):
        super().__init__(workdir, port)
        self.tld, self.user = tld, user
        self.hs_cache_dir = (hs_cache_dir or os.environ.get("SPLITMX_RSPAMD_HS_CACHE")
                             or os.path.join(self.dir, "db"))
        self.skip_local, self.skip_authenticated = skip_local, skip_authenticated
        self.headers, self.extended = headers, extended_spam_headers
        self.reject_message = reject_message
        self.reject_score, self.add_header_score = reject_score, add_header_score
        self.greylist_score = greylist_score
        self.reject_mode = reject_mode        # "reject" | "discard" | "quarantine"
        self.rules, self.extra = rules, extra
        self.conf_path = os.path.join(self.dir, "rspamd.conf")

    def prepare(self):
        d = self.dir
        for sub in ("db", "run", "log"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        os.makedirs(self.hs_cache_dir, exist_ok=True)
        if self.tld == "full":
            tld = "${SHAREDIR}/effective_tld_names.dat"
        else:
            tld = os.path.join(d, "tld.dat")
            with open(tld, "w") as f:
                f.write("com\nnet\norg\nexample\ntest\ninvalid\n")
        b = lambda v: "true" if v else "false"
        hdrs = ", ".join('"%s"' % h for h in self.headers)
        conf = """# private rspamd config written by milter_fixtures.py
%(lua)s
modules { path = "${PLUGINSDIR}"; }
actions { reject = %(rej)s; add_header = %(addh)s; greylist = %(grey)s; }
options {
  pidfile = "%(d)s/run/rspamd.pid";
  filters = "chartable,regexp";          # C modules; no dkim (DNS), no fuzzy_check (network)
  local_addrs = [];
  dns { nameserver = ["127.0.0.1:53"]; timeout = 1s; retransmits = 1; sockets = 2; }
  control_socket = "%(d)s/run/rspamd.sock mode=0600";
  hs_cache_dir = "%(hs)s/";
  cache_file = "%(d)s/db/symbols.cache";
  history_file = "%(d)s/db/rspamd.history";
  stats_file = "%(d)s/db/stats.ucl";
  rrd = "%(d)s/db/rspamd.rrd";
  dynamic_conf = "%(d)s/db/rspamd_dynamic";
  url_tld = "%(tld)s";
  tempdir = "%(d)s/run";
  task_timeout = 8s;
}
logging { type = "console"; level = "info"; color = false; }
worker "rspamd_proxy" {
  bind_socket = "%(host)s:%(port)d";
  milter = yes;
  timeout = 120s;
  count = 1;
  upstream "local" { default = yes; self_scan = yes; }
  reject_message = "%(rejmsg)s";
  discard_on_reject = %(dor)s;
  quarantine_on_reject = %(qor)s;
}
milter_headers {
  use = [%(hdrs)s];
  extended_spam_headers = %(ext)s;
  skip_local = %(sl)s;
  skip_authenticated = %(sa)s;
}
%(extra)s
""" % dict(lua='lua = "$RULESDIR/rspamd.lua"' if self.rules else "",
           rej=self.reject_score, addh=self.add_header_score,
           grey=self.greylist_score, d=d,
           hs=self.hs_cache_dir.rstrip("/"), tld=tld, host=self.host, port=self.port,
           rejmsg=self.reject_message, hdrs=hdrs,
           dor=b(self.reject_mode == "discard"), qor=b(self.reject_mode == "quarantine"), ext=b(self.extended),
           sl=b(self.skip_local), sa=b(self.skip_authenticated), extra=self.extra)
        with open(self.conf_path, "w") as f:
            f.write(conf)
        if self.user and os.geteuid() == 0:
            pw = pwd.getpwnam(self.user)
            for root, dirs, files in os.walk(d):
                for n in dirs + files:
                    os.chown(os.path.join(root, n), pw.pw_uid, pw.pw_gid)
            os.chown(d, pw.pw_uid, pw.pw_gid)
            os.chown(self.hs_cache_dir, pw.pw_uid, pw.pw_gid)

    def argv(self):
        d = self.dir
        a = ["rspamd", "-f", "-c", self.conf_path,
             "--var", "DBDIR=%s/db" % d, "--var", "RUNDIR=%s/run" % d,
             "--var", "LOGDIR=%s/log" % d, "--var", "LOCAL_CONFDIR=%s" % d]
        if os.geteuid() == 0:
            if self.user:
                a += ["-u", self.user, "-g", self.user]
            else:
                a += ["-i"]
        return a


# ------------------------------------------------------------------ python milter
class PyMilter(ManagedProcess):
    """pymilter_server.py (python3-milter).  Behaviour chosen by Subject words /
    RCPT local parts, see that file.  .events() returns the callbacks it logged."""
    name = "pymilter"
    start_timeout = 15.0
    graceful_stop = False

    def __init__(self, workdir=None, port=None, symlist=False, leadspc=False,
                 noreply=False, timeout=600, unix=None):
        super().__init__(workdir, port)
        self.unix = unix
        self.flags = ([] + (["--symlist"] if symlist else [])
                      + (["--leadspc"] if leadspc else [])
                      + (["--noreply"] if noreply else []))
        self.timeout = timeout
        self.events_path = os.path.join(self.dir, "pymilter.jsonl")

    def argv(self):
        return [PY, os.path.join(HERE, "pymilter_server.py"), "--port", str(self.port),
                "--host", self.host, "--log", self.events_path,
                "--timeout", str(self.timeout)] + self.flags + (
                    ["--unix", self.unix] if self.unix else [])

    @property
    def spec(self):
        if self.unix:
            return "unix:" + self.unix
        return "inet:%s:%d" % (self.host, self.port)

    def events(self, cb=None):
        import json
        out = []
        try:
            with open(self.events_path) as f:
                for line in f:
                    e = json.loads(line)
                    if cb is None or e.get("cb") == cb:
                        out.append(e)
        except OSError:
            pass
        return out


# ------------------------------------------------------------------ fake milters
class BadMilter(ManagedProcess):
    """bad_milter.py MODE: garbage, badversion, badactions, shortoptneg, zerolen,
    badcode, modearly, smuggle, badreplycode, close, closemid, hang, hangeom, progress."""
    name = "badmilter"
    start_timeout = 10.0
    handshake = False
    graceful_stop = False

    def __init__(self, mode, workdir=None, port=None, delay=2.0, count=5):
        super().__init__(workdir, port)
        self.mode, self.delay, self.count = mode, delay, count
        self.name = "badmilter-%s" % mode
        self.log_path = os.path.join(self.dir, "%s.out" % self.name)

    def argv(self):
        return [PY, os.path.join(HERE, "bad_milter.py"), self.mode, "--port",
                str(self.port), "--host", self.host, "--delay", str(self.delay),
                "--count", str(self.count)]


class DownMilter:
    """A loopback port where nothing listens (connect -> ECONNREFUSED at once)."""

    def __init__(self, host="127.0.0.1"):
        self.host = host
        self.port = free_port(host)
        self.pid = None

    @property
    def spec(self):
        return "inet:%s:%d" % (self.host, self.port)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


