"""Installing splitmx for real (issue 16, SPEC section 13).

The Debian package that make deb builds is installed with dpkg --root
into a scratch root: a copy-on-write overlay of this machine's / in a
mount namespace of its own, with /dev, /proc and an empty /run, so that
the package's maintainer scripts run as on a real machine and nothing
reaches this one (the namespace and all its mounts go away with the
process that holds it).  Every file is checked, with its owner and mode;
the installed daemon runs with the installed example configuration (and
a test certificate), passes mail and stops with splitmxctl stop.  make
install is checked the same way, with DESTDIR and on the (scratch)
machine itself.  Needs root.
"""
import grp
import os
import re
import shutil
import smtplib
import socket
import ssl
import stat
import subprocess
import tempfile
import time

import pytest

from conftest import OBJ, ROOT, Sink, free_port, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="installing needs root")

VERSION = re.search(r'#define SPLITMX_VERSION\s+"([^"]+)"',
                    open(os.path.join(ROOT, "smtpd", "splitmx.h")).read()
                    ).group(1)

# What the package holds: path -> (mode, owner, group).
PACKAGE_FILES = {
    "/usr/sbin/splitmxd": (0o755, "root", "root"),
    "/usr/sbin/splitmxctl": (0o755, "root", "root"),
    "/usr/share/man/man5/splitmx.conf.5.gz": (0o644, "root", "root"),
    "/usr/share/man/man8/splitmxd.8.gz": (0o644, "root", "root"),
    "/usr/share/man/man8/splitmxctl.8.gz": (0o644, "root", "root"),
    "/etc/splitmx/splitmx.conf": (0o640, "root", "root"),
    "/etc/splitmx/directory": (0o644, "root", "root"),
    "/lib/systemd/system/splitmx.service": (0o644, "root", "root"),
    "/usr/share/doc/splitmx/README.Debian": (0o644, "root", "root"),
    "/usr/share/doc/splitmx/changelog.gz": (0o644, "root", "root"),
    "/usr/share/doc/splitmx/copyright": (0o644, "root", "root"),
    "/usr/share/lintian/overrides/splitmx": (0o644, "root", "root"),
}

# The holder: mounts the scratch root in its own mount namespace, says
# so, then keeps the namespace alive until it is killed (or its parent,
# this test process, dies: setpriv --pdeathsig).
# The scratch root: / copy-on-write, a fresh /run and /tmp.  The
# directories after $1 (the source tree, OBJ) stay visible at their own
# paths, copy-on-write too, also when they are under /tmp or /run, as a
# CI checkout may be.
HOLDER = r'''
set -e
T=$1
shift
mount -t tmpfs -o mode=0755 tmpfs "$T"
mkdir "$T/upper" "$T/work" "$T/root" "$T/keep"
mount -t overlay overlay -o "lowerdir=/,upperdir=$T/upper,workdir=$T/work" \
    "$T/root"
mount --rbind /dev "$T/root/dev"
mount -t proc proc "$T/root/proc"
i=0
for d in "$@"; do
	i=$((i + 1))
	mkdir "$T/keep/$i"
	mount --bind "$T/root$d" "$T/keep/$i"
done
mount -t tmpfs -o mode=0755 tmpfs "$T/root/run"
mount -t tmpfs -o mode=1777 tmpfs "$T/root/tmp"
i=0
for d in "$@"; do
	i=$((i + 1))
	mkdir -p "$T/root$d"
	mount --bind "$T/keep/$i" "$T/root$d"
done
echo ready
exec sleep 3600
'''


class ScratchRoot:
    """This machine, copy-on-write, in a mount namespace of its own."""

    def __init__(self):
        for tool in ("unshare", "nsenter", "setpriv"):
            if shutil.which(tool) is None:
                pytest.skip("%s (util-linux) is not installed" % tool)
        self.dir = tempfile.mkdtemp(prefix="smxroot", dir="/tmp")
        self.root = self.dir + "/root"
        self.holder = subprocess.Popen(
            ["setpriv", "--pdeathsig", "KILL", "unshare", "--mount",
             "--propagation", "private", "sh", "-c", HOLDER, "sh",
             self.dir, os.path.realpath(ROOT), os.path.realpath(OBJ)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL)
        if self.holder.stdout.readline() != b"ready\n":
            err = self.holder.stderr.read().decode()
            self.holder.wait()
            os.rmdir(self.dir)
            pytest.skip("no scratch root (overlayfs in a mount "
                        "namespace): " + err)
        self.procs = []

    def path(self, p=""):
        """p inside the root, as this process sees it."""
        return "/proc/%d/root%s%s" % (self.holder.pid, self.root, p)

    def cmd(self, args, chroot=True):
        pre = ["nsenter", "-t", str(self.holder.pid), "-m", "--"]
        return pre + (["chroot", self.root] if chroot else []) + list(args)

    def run(self, *args, chroot=True, check=True, **kw):
        r = subprocess.run(self.cmd(args, chroot), capture_output=True,
                           text=True, timeout=kw.pop("timeout", 120), **kw)
        if check:
            assert r.returncode == 0, "%s: %s%s" % (args, r.stdout,
                                                    r.stderr)
        return r

    def popen(self, *args, **kw):
        p = subprocess.Popen(self.cmd(args), **kw)
        self.procs.append(p)
        return p

    def stat(self, p):
        return os.lstat(self.path(p))

    def owner(self, p):
        """(mode, user, group) by the root's own passwd and group."""
        st = self.stat(p)
        users = self.ids("/etc/passwd")
        groups = self.ids("/etc/group")
        return (stat.S_IMODE(st.st_mode), users.get(st.st_uid, st.st_uid),
                groups.get(st.st_gid, st.st_gid))

    def ids(self, f):
        out = {}
        for line in open(self.path(f)):
            x = line.split(":")
            out[int(x[2])] = x[0]
        return out

    def entry(self, f, name):
        for line in open(self.path(f)):
            x = line.rstrip("\n").split(":")
            if x[0] == name:
                return x
        return None

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.holder.kill()
        self.holder.wait()
        os.rmdir(self.dir)


def fresh_root():
    """A scratch root where splitmx was never installed (this machine's
    tests may have made _splitmx and /var/empty: not there)."""
    r = ScratchRoot()
    r.run("sh", "-c", "userdel _splitmx 2>/dev/null; "
          "groupdel _splitmx 2>/dev/null; rmdir /var/empty 2>/dev/null; "
          "rm -rf /etc/splitmx /var/spool/splitmx; true")
    assert r.entry("/etc/passwd", "_splitmx") is None
    return r


@pytest.fixture(scope="module")
def deb():
    """make deb, as the administrator would run it."""
    r = subprocess.run(["make", "OBJ=" + OBJ, "deb"], cwd=ROOT,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    path = os.path.join(OBJ, "deb", "splitmx_%s_%s.deb" % (
        VERSION, subprocess.run(["dpkg", "--print-architecture"],
                                capture_output=True, text=True
                                ).stdout.strip()))
    assert os.path.exists(path), r.stdout[-2000:]
    return os.path.abspath(path)


@pytest.fixture(scope="module")
def pkgroot(deb):
    root = fresh_root()
    root.run("dpkg", "--root=" + root.root, "-i", deb, chroot=False)
    root.example = open(root.path("/etc/splitmx/splitmx.conf")).read()
    yield root
    root.close()


def test_deb_passes_lintian(deb):
    changes = deb[:-len(".deb")] + ".changes"
    r = subprocess.run(["lintian", "-E", changes], capture_output=True,
                       text=True, timeout=300)
    tags = [l for l in r.stdout.splitlines() if re.match(r"[EW]: ", l)]
    assert tags == [], r.stdout


def test_deb_installs_every_file_with_its_owner_and_mode(pkgroot, deb):
    r = pkgroot.run("dpkg-query", "-L", "splitmx")
    files = {p for p in r.stdout.split("\n")
             if p and not os.path.isdir(pkgroot.path(p))}
    assert files == set(PACKAGE_FILES)
    for p, want in PACKAGE_FILES.items():
        assert pkgroot.owner(p) == want, p
    conffiles = pkgroot.run("dpkg-query", "-W", "-f=${Conffiles}",
                            "splitmx").stdout.split()
    assert sorted(c for c in conffiles if c.startswith("/")) == \
        ["/etc/splitmx/directory", "/etc/splitmx/splitmx.conf"]
    # What the postinst made.
    user = pkgroot.entry("/etc/passwd", "_splitmx")
    group = pkgroot.entry("/etc/group", "_splitmx")
    assert user and group
    assert int(user[2]) < 1000 and user[3] == group[2]
    assert user[5:] == ["/nonexistent", "/usr/sbin/nologin"]
    assert pkgroot.owner("/var/spool/splitmx") == \
        (0o700, "_splitmx", "_splitmx")
    assert pkgroot.owner("/var/empty") == (0o755, "root", "root")
    assert not os.listdir(pkgroot.path("/var/spool/splitmx"))
    # Installed, neither enabled nor started.
    wants = pkgroot.path("/etc/systemd/system/multi-user.target.wants")
    assert "splitmx.service" not in (os.listdir(wants)
                                     if os.path.isdir(wants) else [])
    assert not os.path.exists(pkgroot.path("/run/splitmx"))


def test_unit_verifies(pkgroot):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd is not installed: systemd-analyze verify "
                    "not run")
    r = pkgroot.run("systemd-analyze", "verify",
                    "/lib/systemd/system/splitmx.service", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout + r.stderr == ""
    unit = open(pkgroot.path("/lib/systemd/system/splitmx.service")).read()
    assert "ExecStart=/usr/sbin/splitmxd -d\n" in unit
    assert "ExecReload=/usr/sbin/splitmxctl reload\n" in unit
    assert "ExecStop=/usr/sbin/splitmxctl stop\n" in unit
    r = pkgroot.run("systemd-analyze", "security", "--offline=yes",
                    "/lib/systemd/system/splitmx.service", check=False)
    m = re.search(r"Overall exposure level for splitmx.service: "
                  r"([\d.]+)", r.stdout)
    if m is None:
        pytest.skip("systemd-analyze security --offline not supported")
    assert float(m.group(1)) <= 3.5, r.stdout[-500:]


def configure(root, ports, sinks):
    """What the administrator does, as the example says: the certificate
    and key in place; here also every address on loopback."""
    crt, key = ports["certs"]
    shutil.copy(crt, root.path("/etc/splitmx/mx1.crt"))
    shutil.copy(key, root.path("/etc/splitmx/mx1.key"))
    os.chmod(root.path("/etc/splitmx/mx1.key"), 0o600)
    conf = root.path("/etc/splitmx/splitmx.conf")
    text = root.example
    for old, new in [
            ("listen on 0.0.0.0 port 25 tls pki mx1",
             "listen on 127.0.0.1 port %d tls pki mx1" % ports["smtp"]),
            ("listen on :: port 25 tls pki mx1",
             "listen on ::1 port %d tls pki mx1" % ports["smtp"]),
            ("listen on 127.0.0.1 port 10025",
             "listen on 127.0.0.1 port %d" % ports["local"]),
            ('local to "[10.0.0.5]:25"',
             'local to "[127.0.0.1]:%d"' % sinks[0].port),
            ('forward to "notes.example.com"',
             'forward to "[127.0.0.1]:%d"' % sinks[1].port)]:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    open(conf, "w").write(text)


def send(port, rcpt, tag):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.starttls(context=ctx)
        s.sendmail("someone@elsewhere.example", [rcpt],
                   "Subject: %s\r\n\r\n%s\r\n" % (tag, tag))


def start_installed(root, *pre):
    """/usr/sbin/splitmxd -d in the root, as the unit runs it."""
    log = tempfile.TemporaryFile()
    p = root.popen(*pre, "/usr/sbin/splitmxd", "-d", stdout=log,
                   stderr=log, stdin=subprocess.DEVNULL)
    p.logf = log
    sock = root.path("/run/splitmx/control.sock")
    wait_for(lambda: p.poll() is not None or (
        os.path.exists(sock) and root.run(
            "/usr/sbin/splitmxctl", "show", "status",
            check=False).returncode == 0), 15, what="installed daemon")
    assert p.poll() is None, logtext(p)
    return p


def logtext(p):
    p.logf.seek(0)
    return p.logf.read().decode("utf-8", "replace")


@pytest.fixture
def sinks():
    s = [Sink(), Sink()]
    yield s
    for x in s:
        x.stop()


def test_installed_daemon_passes_mail_and_stops_losing_nothing(
        pkgroot, sinks, certs):
    ports = {"smtp": free_port(), "local": free_port(), "certs": certs}
    configure(pkgroot, ports, sinks)
    r = pkgroot.run("/usr/sbin/splitmxd", "-n")
    assert r.stdout == "configuration OK\n", r.stderr
    p = start_installed(pkgroot)
    try:
        send(ports["smtp"], "alice@example.com", "to-alice")
        send(ports["smtp"], "bob@example.com", "to-bob")
        sinks[0].wait(1)
        sinks[1].wait(1)
        assert sinks[0].messages[0]["rcpts"] == ["alice@example.com"]
        assert sinks[1].messages[0]["rcpts"] == ["bob@notes.example.com"]
        # The children run as the _splitmx of this root, chrooted.
        uid = pkgroot.entry("/etc/passwd", "_splitmx")[2]
        pid = int(open(pkgroot.path("/run/splitmx/splitmxd.pid")).read())
        assert pid == p.pid
        kids = [int(d) for d in os.listdir("/proc") if d.isdigit() and
                _ppid(int(d)) == p.pid]
        assert len(kids) == 6   # smtp lookup queue relay control filter
        for k in kids:
            st = open("/proc/%d/status" % k).read()
            assert re.search(r"^Uid:\t%s\t" % uid, st, re.M), k
        # Two more wait in the queue; the stop keeps them.
        assert pkgroot.run("/usr/sbin/splitmxctl", "pause",
                           "relay").returncode == 0
        send(ports["smtp"], "alice@example.com", "queued-1")
        send(ports["smtp"], "carol@example.com", "queued-2")
        r = pkgroot.run("/usr/sbin/splitmxctl", "stop")
        assert r.stdout.startswith("splitmxd stopped\n")
        assert p.wait(20) == 0, logtext(p)
        assert sorted(os.listdir(pkgroot.path("/run/splitmx"))) == []
        queued = os.listdir(pkgroot.path("/var/spool/splitmx/queue"))
        assert len(queued) == 2, queued
        # Nothing lost: the next start delivers them.
        p = start_installed(pkgroot)
        sinks[0].wait(2)
        sinks[1].wait(2)
        assert sinks[1].messages[1]["rcpts"] == ["carol@example.com"]
        r = pkgroot.run("/usr/sbin/splitmxctl", "stop")
        assert p.wait(20) == 0
        assert os.listdir(pkgroot.path("/var/spool/splitmx/queue")) == []
    finally:
        if p.poll() is None:
            p.kill()


def _ppid(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except OSError:
        return -1


CAPS = {"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2,
        "CAP_FOWNER": 3, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7,
        "CAP_NET_BIND_SERVICE": 10, "CAP_SYS_CHROOT": 18}


def privileged_port():
    for port in range(700, 1000):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free port below 1024")


def test_installed_daemon_runs_with_the_units_capabilities(pkgroot, sinks,
                                                           certs):
    """The unit's CapabilityBoundingSet and NoNewPrivileges, applied by
    setpriv as systemd would (root, a port below 1024): enough to run."""
    unit = open(pkgroot.path("/lib/systemd/system/splitmx.service")).read()
    caps = re.search(r"^CapabilityBoundingSet=(.*)$", unit, re.M).group(1)
    assert "NoNewPrivileges=yes" in unit
    bset = "-all," + ",".join("+" + c[len("CAP_"):].lower()
                              for c in caps.split())
    ports = {"smtp": privileged_port(), "local": free_port(),
             "certs": certs}
    configure(pkgroot, ports, sinks)
    p = start_installed(pkgroot, "setpriv", "--bounding-set", bset,
                        "--inh-caps", "-all", "--no-new-privs")
    try:
        bnd = re.search(r"^CapBnd:\t(\w+)", open(
            "/proc/%d/status" % p.pid).read(), re.M).group(1)
        assert int(bnd, 16) == sum(1 << CAPS[c] for c in caps.split())
        assert re.search(r"^NoNewPrivs:\t1$", open(
            "/proc/%d/status" % p.pid).read(), re.M)
        send(ports["smtp"], "alice@example.com", "capped")
        sinks[0].wait(1)
        r = pkgroot.run("/usr/sbin/splitmxctl", "stop")
        assert p.wait(20) == 0, logtext(p)
        assert "forbidden" not in logtext(p)
    finally:
        if p.poll() is None:
            p.kill()


def test_remove_keeps_user_spool_and_configuration_purge_does_not(deb):
    root = fresh_root()
    try:
        root.run("dpkg", "--root=" + root.root, "-i", deb, chroot=False)
        open(root.path("/var/spool/splitmx/keep"), "w").write("x")
        root.run("dpkg", "--root=" + root.root, "-r", "splitmx",
                 chroot=False)
        assert not os.path.exists(root.path("/usr/sbin/splitmxd"))
        assert os.path.exists(root.path("/etc/splitmx/splitmx.conf"))
        assert root.entry("/etc/passwd", "_splitmx")
        assert os.path.exists(root.path("/var/spool/splitmx/keep"))
        root.run("dpkg", "--root=" + root.root, "-P", "splitmx",
                 chroot=False)
        assert not os.path.exists(root.path("/etc/splitmx"))
        assert root.entry("/etc/passwd", "_splitmx") is None
        assert root.entry("/etc/group", "_splitmx") is None
        assert not os.path.exists(root.path("/var/spool/splitmx"))
    finally:
        root.close()


MAKE_FILES = {
    "/usr/local/sbin/splitmxd": 0o755,
    "/usr/local/sbin/splitmxctl": 0o755,
    "/usr/local/share/man/man5/splitmx.conf.5": 0o644,
    "/usr/local/share/man/man8/splitmxd.8": 0o644,
    "/usr/local/share/man/man8/splitmxctl.8": 0o644,
    "/usr/local/lib/systemd/system/splitmx.service": 0o644,
    "/etc/splitmx/splitmx.conf": 0o640,
    "/etc/splitmx/directory": 0o644,
}
MAKE_DIRS = {"/var/spool/splitmx": 0o700, "/var/empty": 0o755}


def make_install(*args, cwd=ROOT):
    return subprocess.run(["make", "OBJ=" + OBJ, "install", *args],
                          cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def test_make_install_destdir(tmp_path):
    dest = str(tmp_path / "dest")
    r = make_install("DESTDIR=" + dest, "PREFIX=/usr/local")
    assert r.returncode == 0, r.stdout + r.stderr
    found = {}
    for d, dirs, files in os.walk(dest):
        for f in files + dirs:
            p = os.path.join(d, f)
            found[p[len(dest):]] = os.lstat(p)
    files = {p for p, st in found.items() if stat.S_ISREG(st.st_mode)}
    assert files == set(MAKE_FILES)
    for p, mode in list(MAKE_FILES.items()) + list(MAKE_DIRS.items()):
        st = found[p]
        assert stat.S_IMODE(st.st_mode) == mode, p
        assert (st.st_uid, st.st_gid) == (0, 0), p
    # No /run, no user in a DESTDIR: that is for the machine itself.
    assert not os.path.exists(dest + "/run")
    unit = open(dest + "/usr/local/lib/systemd/system/splitmx.service"
                ).read()
    assert "ExecStart=/usr/local/sbin/splitmxd -d\n" in unit
    assert "ExecStop=/usr/local/sbin/splitmxctl stop\n" in unit
    # Never over an administrator's files.
    with open(dest + "/etc/splitmx/splitmx.conf", "a") as f:
        f.write("# mine\n")
    r = make_install("DESTDIR=" + dest, "PREFIX=/usr/local")
    assert r.returncode == 0
    assert "keeping %s/etc/splitmx/splitmx.conf" % dest in r.stdout
    assert open(dest + "/etc/splitmx/splitmx.conf").read().endswith(
        "# mine\n")


def test_make_install_on_the_machine(certs):
    """make install as root without DESTDIR (in a scratch root): the user
    _splitmx, its spool and /run/splitmx too; the installed example with
    a certificate passes splitmxd -n."""
    root = fresh_root()
    try:
        r = root.run("make", "-C", ROOT, "OBJ=" + OBJ, "install",
                     "PREFIX=/usr/local")
        assert "useradd --system" in r.stdout
        user = root.entry("/etc/passwd", "_splitmx")
        assert user and int(user[2]) < 1000
        assert user[5:] == ["/nonexistent", "/usr/sbin/nologin"]
        for p, mode in MAKE_FILES.items():
            assert root.owner(p) == (mode, "root", "root"), p
        assert root.owner("/var/spool/splitmx") == (0o700, "_splitmx",
                                                    "_splitmx")
        assert root.owner("/var/empty") == (0o755, "root", "root")
        assert root.owner("/run/splitmx") == (0o755, "root", "root")
        crt, key = certs
        shutil.copy(crt, root.path("/etc/splitmx/mx1.crt"))
        shutil.copy(key, root.path("/etc/splitmx/mx1.key"))
        r = root.run("/usr/local/sbin/splitmxd", "-n")
        assert r.stdout == "configuration OK\n"
        # Again: nothing of the administrator's is overwritten.
        r = root.run("make", "-C", ROOT, "OBJ=" + OBJ, "install",
                     "PREFIX=/usr/local")
        assert "keeping /etc/splitmx/splitmx.conf" in r.stdout
        assert "useradd" not in r.stdout
    finally:
        root.close()
