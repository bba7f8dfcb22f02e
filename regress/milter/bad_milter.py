#!/usr/bin/python3
"""Misbehaving milters on a loopback TCP port, for on-error tests.  Stdlib only.

    bad_milter.py MODE --port PORT [--host 127.0.0.1] [--delay S] [--count N]

Modes (all accept any number of connections, one thread each):
  garbage        reads the OPTNEG, answers ~60 bytes of ASCII nonsense (not a packet:
                 the first 4 bytes read as length 0x47415242 = 1.1 GB) and keeps
                 the socket open
  badversion     answers OPTNEG with version 99 (higher than the MTA's 6)
  badactions     answers OPTNEG asking for action flags 0xffff (more than offered)
  shortoptneg    answers OPTNEG with only 4 data bytes
  zerolen        answers OPTNEG with a packet of length 0
  badcode        negotiates, then answers the first command with unknown reply 'Z'
  modearly       negotiates, then answers CONNECT with SMFIR_ADDHEADER (only legal at EOB)
  smuggle        negotiates, CONTINUE to all, at EOB answers
                 REPLYCODE "550 5.7.1 bad\\r\\n250 2.0.0 smuggled" (CR/LF inside)
  badreplycode   negotiates, at EOB answers REPLYCODE "250 2.0.0 fine" (not 4xx/5xx)
  close          accepts and closes at once (EOF before the OPTNEG reply)
  closemid       negotiates, CONTINUE until MAIL, then closes (EOF mid-session)
  hang           accepts, reads everything, never answers anything
  hangeom        negotiates, CONTINUE to everything, never answers BODYEOB
  progress       negotiates, CONTINUE to everything; at BODYEOB sends PROGRESS every
                 --delay seconds (default 2) --count times (default 5), then ACCEPT
Every packet received is printed on stdout (one line each).
"""
import argparse
import socket
import struct
import sys
import threading
import time

ALL_NR = 0  # we reply to everything


def log(*a):
    print(*a, flush=True)


def pkt(code, data=b""):
    return struct.pack("!I", len(data) + 1) + code + data


def read_exact(conn, n):
    buf = b""
    while len(buf) < n:
        c = conn.recv(n - len(buf))
        if not c:
            raise EOFError
        buf += c
    return buf


def read_pkt(conn):
    (ln,) = struct.unpack("!I", read_exact(conn, 4))
    body = read_exact(conn, ln)
    return body[:1], body[1:]


def optneg_ok(version=6, actions=0x1FF, protocol=0):
    return pkt(b"O", struct.pack("!III", version, actions, protocol))


def handle(conn, addr, mode, a):
    log("conn from %s:%d mode %s" % (addr[0], addr[1], mode))
    try:
        if mode == "close":
            conn.close()
            return
        code, data = read_pkt(conn)
        log("recv %r len %d" % (code, len(data)))
        if mode == "hang":
            while True:
                code, data = read_pkt(conn)
                log("recv %r len %d (ignored)" % (code, len(data)))
        if mode == "garbage":
            conn.sendall(b"GARBAGE! this is not the milter protocol, sorry...\r\n" + b"x" * 10)
            while True:
                code, data = read_pkt(conn)
                log("recv %r len %d (ignored)" % (code, len(data)))
        if mode == "badversion":
            conn.sendall(optneg_ok(version=99))
        elif mode == "badactions":
            conn.sendall(optneg_ok(actions=0xFFFF))
        elif mode == "shortoptneg":
            conn.sendall(pkt(b"O", struct.pack("!I", 6)))
        elif mode == "zerolen":
            conn.sendall(struct.pack("!I", 0))
        else:
            conn.sendall(optneg_ok())
        while True:
            code, data = read_pkt(conn)
            log("recv %r len %d %r" % (code, len(data), data[:80]))
            if code in (b"D", b"A"):          # macros and abort get no reply
                continue
            if code == b"Q":
                break
            if code == b"K":
                continue
            if mode == "badcode":
                conn.sendall(pkt(b"Z"))
                continue
            if mode == "modearly":
                conn.sendall(pkt(b"h", b"X-Early\0bad\0"))
                continue
            if mode == "closemid" and code == b"M":
                conn.close()
                return
            if code == b"E":
                if mode == "hangeom":
                    log("hanging at EOB")
                    while True:
                        c2, d2 = read_pkt(conn)
                        log("recv %r len %d (ignored)" % (c2, len(d2)))
                if mode == "smuggle":
                    conn.sendall(pkt(b"y", b"550 5.7.1 bad\r\n250 2.0.0 smuggled\0"))
                    continue
                if mode == "badreplycode":
                    conn.sendall(pkt(b"y", b"250 2.0.0 fine\0"))
                    continue
                if mode == "progress":
                    for i in range(a.count):
                        time.sleep(a.delay)
                        conn.sendall(pkt(b"p"))
                        log("sent PROGRESS %d" % (i + 1))
                    conn.sendall(pkt(b"a"))
                    continue
                conn.sendall(pkt(b"a"))
                continue
            conn.sendall(pkt(b"c"))
    except (EOFError, OSError) as e:
        log("conn %s:%d closed: %r" % (addr[0], addr[1], e))
    finally:
        try:
            conn.close()
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--delay", type=float, default=2.0)
    ap.add_argument("--count", type=int, default=5)
    a = ap.parse_args()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((a.host, a.port))
    s.listen(64)
    log("bad_milter %s listening on %s:%d" % (a.mode, a.host, a.port))
    while True:
        conn, addr = s.accept()
        threading.Thread(target=handle, args=(conn, addr, a.mode, a), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
