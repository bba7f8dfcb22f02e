"""The control process under a flood of connections (issue 18, defect 3):
at the descriptor limit it pauses instead of spinning, logs the condition
once, and recovers; the control socket holds at most 16 connections of
one user and 64 of all users but root, so that no user locks the others
(or root) out."""
import os
import socket
import subprocess
import sys
import time

import pytest

from conftest import wait_for

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

PER_UID = 16
TOTAL = 64


def control_pid(d):
    st = d.ctl_json("show", "status")
    return [p["pid"] for p in st["processes"] if p["name"] == "control"][0]


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime, fields 14 and 15 of stat(5), after pid and comm.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def flood(path, n):
    """Up to n idle connections; stops when the backlog is full."""
    out = []
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(path)
        except (BlockingIOError, ConnectionRefusedError):
            s.close()
            break
        out.append(s)
    return out


def refused(sock_path):
    """A connection is told it is one too many and closed."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(sock_path)
        data = b""
        while True:
            try:
                b = s.recv(4096)
            except ConnectionResetError:
                break
            if not b:
                break
            data += b
    return data.startswith(b"1\ntoo many connections")


def _hold(path, n):
    """As another user: hold n connections until stdin closes."""
    code = ("import socket, sys\n"
            "ss = []\n"
            "for _ in range(%d):\n"
            "    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
            "    s.connect(%r)\n"
            "    ss.append(s)\n"
            "print('ready', flush=True)\n"
            "sys.stdin.read()\n" % (n, path))
    return code


def hold_as(uid, gid, path, n):
    p = subprocess.Popen([sys.executable, "-c", _hold(path, n)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True, user=uid, group=gid, extra_groups=[])
    assert p.stdout.readline().strip() == "ready"
    return p


@root_only
def test_control_flood_at_the_descriptor_limit_pauses(smx):
    import grp
    nogroup = grp.getgrnam("nogroup").gr_gid
    # 64 descriptors: the control process runs out before the 16
    # connections of root and 64 of other users it would hold.
    d = smx.start('control socket "{tmp}/control.sock" group "nogroup"',
                  nofile=64)
    pid = control_pid(d)
    socks, helpers = [], []
    try:
        socks = flood(d.control, PER_UID)
        for uid in range(60001, 60001 + TOTAL // PER_UID):
            helpers.append(hold_as(uid, nogroup, d.control, PER_UID))
        # Also the status socket, while there are no descriptors.
        socks += flood(d.status, 5)
        d.wait_log(r"Too many open files")
        t0 = cpu_seconds(pid)
        time.sleep(3)
        used = cpu_seconds(pid) - t0
        # Spinning on accept() took all of a core before.
        assert used < 0.5, "control used %.2fs of CPU in 3s" % used
        log = d.log()
        # Once a minute; it was millions of lines a minute before.
        assert log.count("out of descriptors accepting") == 1, log[-2000:]
        assert log.count("Too many open files") == 1, log[-2000:]
    finally:
        for s in socks:
            s.close()
        for p in helpers:
            p.stdin.close()
            p.wait(10)
    # The flood is over: the control socket answers again.
    wait_for(lambda: d.ctl("show", "status").returncode == 0, 10,
             what="splitmxctl to work after the flood")
    assert d.status_json()["generation"] == 1
    assert d.running()


@root_only
def test_control_connections_capped_per_user_and_in_total(smx):
    import grp
    nogroup = grp.getgrnam("nogroup").gr_gid
    d = smx.start('control socket "{tmp}/control.sock" group "nogroup"')
    held = []
    helpers = []
    try:
        # One user (root here) holds its 16; the 17th is refused.
        held = flood(d.control, PER_UID)
        assert len(held) == PER_UID
        wait_for(lambda: refused(d.control), 10, what="a refusal")
        r = d.ctl("show", "status")
        assert r.returncode == 1
        assert "too many connections" in r.stderr, r.stderr
        # Another user is not locked out by it.
        r = d.ctl("show", "status", user="nobody")
        assert r.returncode == 0, r.stderr
        # Four more users with 16 each: 64 connections of users other
        # than root, the most there may be.
        for uid in range(60001, 60001 + TOTAL // PER_UID):
            helpers.append(hold_as(uid, nogroup, d.control, PER_UID))
        wait_for(lambda: d.ctl("show", "status", user="nobody")
                 .returncode == 1, 10, what="the total to be reached")
        r = d.ctl("show", "status", user="nobody")
        assert "too many connections" in r.stderr, r.stderr
        # Root's own connections do not count towards the total.
        for s in held:
            s.close()
        held = []
        wait_for(lambda: d.ctl("show", "status").returncode == 0, 10,
                 what="root to get in while the others are full")
    finally:
        for s in held:
            s.close()
        for p in helpers:
            p.stdin.close()
            p.wait(10)
    wait_for(lambda: d.ctl("show", "status", user="nobody")
             .returncode == 0, 10, what="nobody to get in again")
    # Every refusal above, one log line (once a minute at most).
    log = d.log()
    assert log.count("refused: ") == 1, log[-3000:]
    assert d.running()


def test_metrics_flood_at_the_descriptor_limit_pauses(smx):
    from conftest import free_port
    import urllib.request
    mport = free_port()
    d = smx.start("metrics listen on 127.0.0.1 port %d" % mport, nofile=64)
    pid = control_pid(d)
    socks = []
    try:
        # evhttp holds each connection until it has been idle 10s.
        for _ in range(80):
            socks.append(socket.create_connection(("127.0.0.1", mport),
                                                  timeout=2))
        d.wait_log(r"Too many open files")
        t0 = cpu_seconds(pid)
        time.sleep(2)
        used = cpu_seconds(pid) - t0
        assert used < 0.4, "control used %.2fs of CPU in 2s" % used
        log = d.log()
        assert log.count("out of descriptors accepting on the metrics "
                         "socket") == 1, log[-2000:]
        assert log.count("Too many open files") == 1, log[-2000:]
    finally:
        for s in socks:
            s.close()
    body = wait_for(lambda: urllib.request.urlopen(
        "http://127.0.0.1:%d/metrics" % mport, timeout=5).read(), 10,
        what="/metrics after the flood")
    assert b"splitmx_config_generation 1" in body
    assert d.ctl("show", "status").returncode == 0
