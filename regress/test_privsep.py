"""The process model: seven processes, privileges dropped, supervision."""
import os
import pwd
import signal
import time

import pytest

from conftest import OBJ, wait_for

NAMES = ["smtp", "lookup", "queue", "relay", "control", "filter"]

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def proc_status(pid):
    with open("/proc/%d/status" % pid) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f
                    if ":\t" in line)


def proc_title(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return f.read().split(b"\0")[0].decode()


def child_by_name(d):
    """The children by name, once each has named itself."""
    def named():
        out = {}
        for pid in d.children():
            title = proc_title(pid)
            if not title.startswith("splitmxd: "):
                return None
            out[title[len("splitmxd: "):].split()[0]] = pid
        return out if len(out) == len(NAMES) else None
    return wait_for(named, 10, what="every child named")


def test_every_process_named(smx):
    d = smx.start()
    kids = child_by_name(d)
    assert sorted(kids) == sorted(NAMES)


def test_show_status_json_lists_every_process(smx):
    d = smx.start()
    st = d.ctl_json("show", "status")
    names = [p["name"] for p in st["processes"]]
    assert names == ["parent"] + NAMES
    assert all(p["state"] == "running" for p in st["processes"])
    assert st["processes"][0]["pid"] == d.pid
    kids = child_by_name(d)
    for p in st["processes"][1:]:
        assert kids[p["name"]] == p["pid"]
    assert st["version"]
    assert st["uptime"] >= 0


def test_show_status_text(smx):
    d = smx.start()
    r = d.ctl("show", "status")
    assert r.returncode == 0
    for n in ["parent"] + NAMES:
        assert n in r.stdout
    assert "running" in r.stdout


@root_only
def test_children_drop_privileges_as_root(smx):
    d = smx.start()
    pw = pwd.getpwnam("_splitmx")
    kids = child_by_name(d)
    for name, pid in kids.items():
        st = proc_status(pid)
        assert st["Uid"].split() == [str(pw.pw_uid)] * 4, name
        assert st["Gid"].split() == [str(pw.pw_gid)] * 4, name
        assert st["Groups"].split() == [str(pw.pw_gid)], name
        assert st["NoNewPrivs"].strip() == "1", name
        assert st["CapEff"].strip() == "0" * 16, name
        root = os.readlink("/proc/%d/root" % pid)
        if name == "queue":
            assert root == os.path.realpath(d.queue_dir), name
        else:
            assert root == "/var/empty", name
    # The parent keeps its privilege.
    assert proc_status(d.pid)["Uid"].split()[0] == "0"



def test_children_run_under_a_seccomp_filter(smx):
    """Every child has loaded its filter (smtpd/sandbox.c; what it
    refuses is tested by regress/lib/sandbox_test.c); the parent none."""
    if "asan" in OBJ:
        pytest.skip("sanitizer builds load no filter")
    d = smx.start()
    for name, pid in child_by_name(d).items():
        st = proc_status(pid)
        assert st["Seccomp"].strip() == "2", name
        assert st["Seccomp_filters"].strip() == "1", name
    assert proc_status(d.pid)["Seccomp"].strip() == "0"
    # control still answers under its filter (kill(pid, 0) probes).
    assert d.ctl("show", "status").returncode == 0

@root_only
def test_root_refuses_unknown_user(smx):
    text, port = smx.config('user "_splitmx_nobody_here"')
    conf = os.path.join(smx.tmp, "bad.conf")
    with open(conf, "w") as f:
        f.write(text)
    import subprocess
    from conftest import SPLITMXD
    r = subprocess.run([SPLITMXD, "-d", "-f", conf], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 1
    assert "_splitmx_nobody_here" in r.stderr


def test_no_core_limit_and_fds_closed(smx):
    d = smx.start()
    for name, pid in child_by_name(d).items():
        with open("/proc/%d/limits" % pid) as f:
            core = [l for l in f if l.startswith("Max core file size")][0]
        assert core.split()[4] == "0", name
        # stdin/out/err, the parent channel, four siblings; plus what
        # each process opened itself (listeners, sockets, event fds).
        fds = os.listdir("/proc/%d/fd" % pid)
        assert len(fds) < 40, (name, len(fds))


@pytest.mark.parametrize("victim", NAMES)
def test_killed_child_stops_daemon(smx, victim):
    d = smx.start()
    pid = child_by_name(d)[victim]
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    d.proc.wait(timeout=5)
    assert time.monotonic() - t0 < 2.0
    assert d.proc.returncode != 0
    log = d.log()
    assert "child %s terminated by signal 9" % victim in log
    # No zombie, no orphan left behind.
    wait_for(lambda: not any(os.path.exists("/proc/%d" % p)
                             for p in d.children()), 3, what="children")


def test_sigterm_stops_cleanly(smx):
    d = smx.start()
    kids = d.children()
    assert len(kids) == len(NAMES)
    assert d.stop() == 0
    assert "terminated" in d.log()
    for p in kids:
        assert not os.path.exists("/proc/%d" % p) or \
            open("/proc/%d/stat" % p).read().split()[2] == "Z"
    assert not os.path.exists(d.control)
