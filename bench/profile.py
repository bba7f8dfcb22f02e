#!/usr/bin/env python3
"""What a message costs, in figures that do not depend on the machine's
load: CPU time per message of each splitmx process (utime+stime ticks
from /proc/PID/stat and the nanoseconds of /proc/PID/schedstat), context
switches, the queue's fsyncs and batches, and with --strace the system
calls of each process (strace -c attached to it for the run).

    bench/profile.py [--obj obj] [--n 2000] [--sessions 50] [--size 1024]
        [--relay paused|running] [--reuse] [--prefill K] [--strace DIR]

Load: Postfix's smtp-source (-d with --reuse: every message of a
session over one connection; without it, as `make bench` does, one
connection per message).  --prefill queues K messages first (relay
paused), so that a run measures accept with a full queue.  Wall-clock
rates are printed for the direction only: on a shared machine they are
noise; CPU per message and call counts are not."""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

CHILDREN = ("smtp", "lookup", "queue", "relay", "control")
PROCS = ("parent",) + CHILDREN
HZ = os.sysconf("SC_CLK_TCK")


def children(root):
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            st = open("/proc/%s/stat" % d).read()
            cmd = open("/proc/%s/cmdline" % d, "rb").read()
        except OSError:
            continue
        if int(st.rsplit(")", 1)[1].split()[1]) != root:
            continue
        name = cmd.replace(b"\0", b" ").decode(errors="replace")
        for c in CHILDREN:
            if name.startswith("splitmxd: %s" % c):
                out[c] = int(d)
    return out


def sample(pid):
    st = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    ticks = int(st[11]) + int(st[12])		# utime + stime
    ns = int(open("/proc/%d/schedstat" % pid).read().split()[0])
    vcs = ivcs = 0
    for line in open("/proc/%d/status" % pid):
        if line.startswith("voluntary_ctxt_switches:"):
            vcs = int(line.split()[1])
        elif line.startswith("nonvoluntary_ctxt_switches:"):
            ivcs = int(line.split()[1])
    rss = 0
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return ticks, ns, vcs, ivcs, rss


def devstat(dev):
    if not dev:
        return None
    # /sys/block/DEV/stat: field 5 write I/Os, field 16 flushes
    return [int(x) for x in open("/sys/block/%s/stat" % dev).read().split()]


def ctl(obj, sock, *args):
    return subprocess.run([os.path.join(obj, "splitmxctl"), "-s", sock] +
                          list(args), capture_output=True, text=True)


def stats(obj, sock):
    r = ctl(obj, sock, "show", "stats")
    out = {}
    for line in r.stdout.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            try:
                out[k.strip()] = int(v)
            except ValueError:
                pass
    return out


def source(port, n, sessions, size, reuse):
    cmd = ["smtp-source", "-s", str(sessions), "-m", str(n), "-l",
           str(size), "-f", "a@b.test", "-t", "x@example.test"]
    if reuse:
        cmd.append("-d")
    cmd.append("127.0.0.1:%d" % port)
    t0 = time.time()
    subprocess.run(cmd, check=True)
    return time.time() - t0


def strace_summary(path, n, top):
    rows = []
    total = 0
    for line in open(path):
        f = line.split()
        if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
            calls = int(f[3])
            rows.append((calls, f[-1]))
        elif f and f[-1] == "total":
            total = int(f[2]) if len(f) >= 3 else 0
    rows.sort(reverse=True)
    total = sum(c for c, _ in rows)
    desc = ", ".join("%s %.2f" % (name, c / n) for c, name in rows[:top])
    return total / n, desc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--obj", default="obj")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--relay", choices=("paused", "running"),
                    default="paused")
    ap.add_argument("--reuse", action="store_true")
    ap.add_argument("--prefill", type=int, default=0)
    ap.add_argument("--strace", metavar="DIR")
    ap.add_argument("--port", type=int, default=12535)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--spool", default="/var/spool",
                    help="where the run's directory is made")
    ap.add_argument("--dev", help="block device of the spool (e.g. loop0): "
                    "count its writes and cache flushes")
    a = ap.parse_args()
    obj = os.path.abspath(a.obj)
    port, sink = a.port, a.port + 1

    work = tempfile.mkdtemp(prefix="splitmx-prof-", dir=a.spool)
    os.chmod(work, 0o755)
    sock = os.path.join(work, "control.sock")
    conf = os.path.join(work, "splitmx.conf")
    with open(conf, "w") as f:
        f.write("""hostname "mx.bench.example"
queue "%s/queue"
control socket "%s"
status socket "%s/status.sock"
listen on 127.0.0.1 port %d
limit sessions 6000
limit sessions-per-ip 6000
limit message-size 50M
trusted 127.0.0.0/8
domain "example.test" {
	type relay
	forward to "[127.0.0.1]:%d" tls none
}
""" % (work, sock, work, port, sink))
    log = open(os.path.join(work, "splitmxd.log"), "w")
    d = subprocess.Popen([os.path.join(obj, "splitmxd"), "-d", "-f", conf],
                         stderr=log)
    sinkp = None
    straces = []
    try:
        for _ in range(100):
            if ctl(obj, sock, "show", "status").returncode == 0:
                break
            time.sleep(0.1)
        else:
            sys.exit("profile: splitmxd did not start (%s)" % work)
        pids = children(d.pid)
        pids["parent"] = d.pid
        if a.relay == "paused" or a.prefill:
            ctl(obj, sock, "pause", "relay")
        if a.prefill:
            source(port, a.prefill, 50, a.size, False)
        if a.relay == "running":
            sinkp = subprocess.Popen(["smtp-sink", "-u", "nobody",
                                      "127.0.0.1:%d" % sink, "1000"],
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
            if a.prefill:
                sys.exit("profile: --prefill with a running relay "
                         "measures the backlog, not the run")
        if a.strace:
            os.makedirs(a.strace, exist_ok=True)
            for c, pid in pids.items():
                straces.append(subprocess.Popen(
                    ["strace", "-c", "-f", "-q", "-o",
                     os.path.join(a.strace, c + ".txt"), "-p", str(pid)]))
            time.sleep(1)
        time.sleep(0.5)
        s0 = {c: sample(p) for c, p in pids.items()}
        q0 = stats(obj, sock)
        b0 = devstat(a.dev)
        t0 = time.time()
        wall = source(port, a.n, a.sessions, a.size, a.reuse)
        e2e = None
        if a.relay == "running":
            end = time.time() + 300
            while time.time() < end:
                if stats(obj, sock).get("messages.delivered", 0) >= a.n:
                    e2e = time.time() - t0
                    break
                time.sleep(0.05)
        time.sleep(0.3)
        q1 = stats(obj, sock)
        b1 = devstat(a.dev)
        s1 = {c: sample(p) for c, p in pids.items()}
        for p in straces:
            p.send_signal(signal.SIGINT)
        for p in straces:
            p.wait()
        n = a.n
        print("== n=%d sessions=%d size=%d relay=%s%s%s" % (
            n, a.sessions, a.size, a.relay,
            " reuse" if a.reuse else "",
            " prefill=%d" % a.prefill if a.prefill else ""))
        print("%-8s %9s %9s %9s %9s %8s" % ("process", "us/msg", "ticks",
                                            "vcsw/msg", "ivcsw/msg",
                                            "rss_kB"))
        tot = 0
        for c in PROCS:
            if c not in s0:
                continue
            t = s1[c][0] - s0[c][0]
            us = (s1[c][1] - s0[c][1]) / 1000.0 / n
            tot += us
            print("%-8s %9.1f %9d %9.2f %9.2f %8d" % (
                c, us, t, (s1[c][2] - s0[c][2]) / n,
                (s1[c][3] - s0[c][3]) / n, s1[c][4]))
        print("%-8s %9.1f" % ("total", tot))
        dq = {k: q1.get(k, 0) - q0.get(k, 0) for k in q1}
        print("queue: commits=%d batches=%d fsyncs=%d (%.2f/msg, "
              "%.1f msgs/batch) messages=%d" % (
                  dq.get("queue.commits", 0), dq.get("queue.batches", 0),
                  dq.get("queue.fsyncs", 0),
                  dq.get("queue.fsyncs", 0) / n,
                  dq.get("queue.commits", 0) /
                  max(1, dq.get("queue.batches", 0)),
                  q1.get("queue.messages", 0)))
        if a.dev:
            print("%s: %.2f writes/msg, %.3f cache flushes/msg" % (
                a.dev, (b1[4] - b0[4]) / n, (b1[15] - b0[15]) / n))
        print("wall (direction only): accept %.0f msg/s%s" % (
            n / wall, " end to end %.0f msg/s" % (n / e2e) if e2e else ""))
        if a.strace:
            for c in PROCS:
                path = os.path.join(a.strace, c + ".txt")
                if os.path.exists(path):
                    per, desc = strace_summary(path, n, 8)
                    print("syscalls %-7s %6.1f/msg: %s" % (c, per, desc))
    finally:
        for p in straces:
            if p.poll() is None:
                p.kill()
        if sinkp is not None:
            sinkp.kill()
            sinkp.wait()
        d.send_signal(signal.SIGTERM)
        try:
            d.wait(20)
        except subprocess.TimeoutExpired:
            d.kill()
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
