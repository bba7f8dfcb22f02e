#!/usr/bin/env python3
"""Hold N SMTP sessions to 127.0.0.1:PORT at once: open them all, read
every banner, say EHLO; with --message, then send one message through
each session in turn (at most --window at a time) while all the others
stay open.  Prints how many got their banner and their 250, and the
memory of each process of the daemon (ROOTPID and its children): VmRSS
while every session is open and VmHWM, the peak.

    sessions.py PORT N ROOTPID [--message] [--sources K] [--window W]

The connections come from K loopback addresses (127.0.0.2 ...), so that
neither the client's ephemeral ports nor "limit sessions-per-ip" set the
limit; the daemon needs "limit sessions" and "limit sessions-per-ip" of
at least N and N/K, and descriptors for all of them."""
import argparse
import errno
import os
import resource
import selectors
import socket
import sys
import time

BODY = (b"From: <a@b.test>\r\nTo: <x@example.test>\r\nSubject: held\r\n\r\n" +
        b"".join(b"line %04d of a message sent through a held session\r\n"
                 % i for i in range(20)) + b".\r\n")


def tree(root):
    pids = {root: "parent"}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            st = open("/proc/%s/stat" % d).read()
            cmd = open("/proc/%s/cmdline" % d, "rb").read()
        except OSError:
            continue
        if int(st.rsplit(")", 1)[1].split()[1]) == root:
            name = cmd.replace(b"\0", b" ").decode(errors="replace")
            pids[int(d)] = name.replace("splitmxd: ", "").split()[0]
    return pids


def memory(root):
    out = []
    for pid, name in sorted(tree(root).items()):
        rss = hwm = 0
        try:
            for line in open("/proc/%d/status" % pid):
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
        except OSError:
            continue
        out.append((name, rss, hwm))
    return out


def show(label, mem):
    print("%s: %s; total %.1f MB" % (label, ", ".join(
        "%s %.1f MB" % (n, r / 1024.0) for n, r, _ in mem),
        sum(r for _, r, _ in mem) / 1024.0))


class Session:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.state = "banner"
        self.want = 0		# replies awaited


def replies(s):
    """Complete replies in s.buf (the last line of each), taken out."""
    out = []
    while b"\r\n" in s.buf:
        line, s.buf = s.buf.split(b"\r\n", 1)
        if len(line) >= 4 and line[3:4] == b"-":
            continue
        out.append(line)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("n", type=int)
    ap.add_argument("root", type=int)
    ap.add_argument("--message", action="store_true")
    ap.add_argument("--sources", type=int, default=20)
    ap.add_argument("--window", type=int, default=20)
    ap.add_argument("--timeout", type=float, default=120,
                    help="seconds for each phase")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = a.n + 1000
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
        except (ValueError, OSError):
            sys.exit("sessions: need %d descriptors, the limit is %d" %
                     (want, hard))
    else:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    sel = selectors.DefaultSelector()
    sessions = []
    t0 = time.monotonic()
    deadline = t0 + a.timeout
    for i in range(a.n):
        s = socket.socket()
        s.setblocking(False)
        s.bind(("127.0.0.%d" % (2 + i % a.sources), 0))
        r = s.connect_ex(("127.0.0.1", a.port))
        if r not in (0, errno.EINPROGRESS):
            sys.exit("sessions: connect %d: %s" % (i, os.strerror(r)))
        ss = Session(s)
        sessions.append(ss)
        sel.register(s, selectors.EVENT_READ, ss)
    pending = len(sessions)
    banner_ok = 0
    closed = 0
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1):
            ss = key.data
            try:
                data = ss.sock.recv(4096)
            except OSError:
                data = b""
            if not data:
                sel.unregister(ss.sock)
                if ss.state in ("banner", "ehlo"):
                    pending -= 1
                ss.state = "closed"
                closed += 1
                continue
            ss.buf += data
            for line in replies(ss):
                if ss.state == "banner":
                    if line.startswith(b"220"):
                        banner_ok += 1
                    ss.state = "ehlo"
                    ss.sock.send(b"EHLO held.example\r\n")
                elif ss.state == "ehlo":
                    ss.state = "idle"
                    pending -= 1
    t_open = time.monotonic() - t0
    held = sum(1 for s in sessions if s.state == "idle")
    print("sessions=%d banner_ok=%d held=%d in %.1fs" %
          (a.n, banner_ok, held, t_open))
    show("all open (VmRSS)", memory(a.root))

    sent_ok = 0
    if a.message:
        t1 = time.monotonic()
        deadline = t1 + a.timeout
        todo = [s for s in sessions if s.state == "idle"]
        active = 0
        nxt = 0
        while (nxt < len(todo) or active) and time.monotonic() < deadline:
            while active < a.window and nxt < len(todo):
                ss = todo[nxt]
                nxt += 1
                ss.state = "envelope"
                ss.want = 3
                ss.sock.send(b"MAIL FROM:<a@b.test>\r\n"
                             b"RCPT TO:<x@example.test>\r\nDATA\r\n")
                active += 1
            for key, _ in sel.select(timeout=1):
                ss = key.data
                try:
                    data = ss.sock.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(ss.sock)
                    if ss.state in ("envelope", "data"):
                        active -= 1
                    ss.state = "closed"
                    continue
                ss.buf += data
                for line in replies(ss):
                    if ss.state == "envelope":
                        ss.want -= 1
                        if ss.want == 0:
                            if line.startswith(b"354"):
                                ss.state = "data"
                                ss.sock.send(BODY)
                            else:
                                ss.state = "done"
                                active -= 1
                    elif ss.state == "data":
                        if line.startswith(b"250"):
                            sent_ok += 1
                        ss.state = "done"
                        active -= 1
        print("messages_ok=%d of %d in %.1fs, every session still open" %
              (sent_ok, len(todo), time.monotonic() - t1))
        show("after the messages (VmRSS)", memory(a.root))
    mem = memory(a.root)
    print("peak (VmHWM): %s; largest %.1f MB" % (", ".join(
        "%s %.1f MB" % (n, h / 1024.0) for n, _, h in mem),
        max(h for _, _, h in mem) / 1024.0))
    for ss in sessions:
        ss.sock.close()


if __name__ == "__main__":
    main()
