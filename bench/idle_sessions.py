#!/usr/bin/env python3
"""Open N SMTP sessions to 127.0.0.1:PORT, read each banner, say EHLO,
hold them all, then print how many succeeded and the RSS of the daemon's
process tree (ROOTPID and its children)."""
import os
import resource
import selectors
import socket
import sys
import time


def tree_rss_kb(root):
    pids = [root]
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                st = open("/proc/%s/stat" % d).read()
            except OSError:
                continue
            if int(st.rsplit(")", 1)[1].split()[1]) == root:
                pids.append(int(d))
    total = 0
    for p in pids:
        try:
            for line in open("/proc/%d/smaps_rollup" % p):
                if line.startswith("Rss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total, len(pids)


def main():
    port, n, root = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 1000), hard))
    socks, ok = [], 0
    sel = selectors.DefaultSelector()
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
        sel.register(s, selectors.EVENT_READ, b"")
    deadline = time.time() + 60
    pending = len(socks)
    while pending and time.time() < deadline:
        for key, _ in sel.select(timeout=1):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            sel.unregister(s)
            pending -= 1
            if data.startswith(b"220"):
                ok += 1
                s.send(b"EHLO bench.example\r\n")
    time.sleep(2)
    rss, nprocs = tree_rss_kb(root)
    print("sessions=%d banner_ok=%d rss_total=%.1f MB processes=%d" %
          (n, ok, rss / 1024.0, nprocs))
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
