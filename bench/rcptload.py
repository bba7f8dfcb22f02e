"""The RCPT load of the routing and LDAP benchmarks: SMTP sessions that
send RCPTs and count the reply codes, and the address mix they send."""
import asyncio
import time


def wait_for(pred, timeout, what, prog="bench"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise SystemExit("%s: timed out waiting for %s" % (prog, what))


def mix(rnd, i):
    """Mailbox i as the mix has it: 10% unknown, 10% with +detail, 10%
    in upper case, the rest as they are."""
    r = rnd.random()
    if r < 0.1:
        return "nobody%07d@example.com" % i
    if r < 0.2:
        return "user%07d+bench@example.com" % i
    if r < 0.3:
        return "USER%07d@Example.COM" % i
    return "user%07d@example.com" % i


class Session:
    """One SMTP session with its share of the addresses, taken in turn
    (from the start again once all were taken)."""

    def __init__(self, port, addrs):
        self.port, self.addrs = port, addrs
        self.next = 0
        self.rcpts, self.codes = 0, {}

    async def connect(self):
        self.r, self.w = await asyncio.open_connection("127.0.0.1",
                                                       self.port)
        await self.reply()
        self.w.write(b"EHLO bench.example\r\n")
        await self.reply()

    async def reply(self):
        while True:
            line = await self.r.readline()
            if not line:
                raise EOFError("connection closed")
            if line[3:4] != b"-":
                return int(line[:3])

    def left(self):
        return len(self.addrs) - self.next

    def take(self, n):
        out = [self.addrs[(self.next + k) % len(self.addrs)]
               for k in range(n)]
        self.next += n
        return out

    def count(self, code):
        self.codes[code] = self.codes.get(code, 0) + 1
        self.rcpts += 1

    async def lockstep(self, batch):
        """MAIL, then each RCPT waiting for its reply, then RSET."""
        self.w.write(b"MAIL FROM:<b@bench.example>\r\n")
        await self.reply()
        for a in batch:
            self.w.write(b"RCPT TO:<%s>\r\n" % a.encode())
            self.count(await self.reply())
        self.w.write(b"RSET\r\n")
        await self.reply()

    async def pipelined(self, batch):
        """MAIL, every RCPT and RSET in one write, then the replies."""
        buf = [b"MAIL FROM:<b@bench.example>\r\n"]
        buf += [b"RCPT TO:<%s>\r\n" % a.encode() for a in batch]
        buf.append(b"RSET\r\n")
        self.w.write(b"".join(buf))
        await self.reply()
        for _ in batch:
            self.count(await self.reply())
        await self.reply()

    async def close(self):
        self.w.write(b"QUIT\r\n")
        try:
            await self.reply()
        except (EOFError, ConnectionError):
            pass
        self.w.close()


async def rcpt_rate(port, addrs, sessions, work):
    """work(session, t0) runs on each of the sessions, which share
    addrs, from t0 (all connected); returns (recipients per second,
    recipients, {code: count})."""
    ss = [Session(port, addrs[i::sessions]) for i in range(sessions)]
    await asyncio.gather(*(s.connect() for s in ss))
    t0 = time.monotonic()
    await asyncio.gather(*(work(s, t0) for s in ss))
    elapsed = time.monotonic() - t0
    await asyncio.gather(*(s.close() for s in ss))
    total = sum(s.rcpts for s in ss)
    codes = {}
    for s in ss:
        for c, k in s.codes.items():
            codes[c] = codes.get(c, 0) + k
    return total / elapsed, total, codes
