"""The on-disk queue: what a 250 promises, restarts, crashes, damage.

The spool layout checked here is the one queue/queue_fs.c documents:
incoming/<id>.msg while a message is written, queue/<id>.msg (the message,
its envelope, a trailer) once it is committed, queue/<id>.env once the
envelope was rewritten, corrupt/ for what recovery set aside.
"""
import json
import os
import random
import re
import smtplib
import socket
import subprocess
import threading
import time

import pytest

from conftest import OBJ, wait_for

ID_RE = re.compile(r"queued as ([0-9a-f]{24})")


def spool(d, *parts):
    return os.path.join(d.queue_dir, *parts)


def listdir(path):
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []


def send(port, body, rcpts=("bob@example.com",), sender="alice@sender.example"):
    """One message over a fresh session; returns its queue id."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.ehlo("client.example")
        code, _ = s.mail(sender)
        assert code == 250
        for r in rcpts:
            code, _ = s.rcpt(r)
            assert code == 250, r
        code, resp = s.data(body)
        assert code == 250, resp
        m = ID_RE.search(resp.decode())
        assert m, resp
        return m.group(1)


TRAILER_LEN = 30


def message_file(path):
    """A committed message file: (message bytes, embedded envelope)."""
    with open(path, "rb") as f:
        data = f.read()
    trailer = data[-TRAILER_LEN:]
    m = re.fullmatch(rb"envelope=(\d{20})\n", trailer)
    assert m, trailer
    off = int(m.group(1))
    return data[:off], data[off:-TRAILER_LEN].decode()


def message_data(d, qid):
    return message_file(spool(d, "queue", qid + ".msg"))[0]


def strip_received(data):
    """The message as the client sent it: our Received header removed."""
    assert data.startswith(b"Received: "), data[:80]
    lines = data.split(b"\r\n")
    i = 1
    while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
        i += 1
    return b"\r\n".join(lines[i:])


def start_paused(smx, body=""):
    """A daemon whose relay is paused: what these tests look at is the
    queue as the smtp process left it, before any delivery attempt
    (the default destination, [127.0.0.1]:9, would defer everything)."""
    d = smx.start(body)
    r = d.ctl("pause", "relay")
    assert r.returncode == 0, r.stderr
    return d


def incoming(d):
    """incoming/ without the scheduler's envelope rewrites in progress
    (<id>.upd): after a restart the relay is no longer paused."""
    return [f for f in listdir(spool(d, "incoming"))
            if not f.endswith(".upd")]


def start_recovered(d):
    """(Re)start d and wait until the queue process has recovered: the
    control socket and the SMTP port are up before that."""
    n = d.log().count("event=recovered")
    d.start()
    wait_for(lambda: d.log().count("event=recovered") > n, 30,
             what="queue recovery")
    return d


def queue_json(d):
    return d.ctl_json("show", "queue")["queue"]


def body_for(tag, size=300):
    head = ("Subject: %s\r\nMessage-ID: <%s@client.example>\r\n\r\n"
            % (tag, tag)).encode()
    line = ("%s filler line\r\n" % tag).encode()
    return head + line * max(1, size // len(line))


# -- show queue ------------------------------------------------------------

def test_show_queue_empty(smx):
    d = start_paused(smx)
    r = d.ctl("show", "queue")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "queue is empty\n"
    assert d.ctl_json("show", "queue") == {"queue": []}


def test_show_queue_text_and_json(smx):
    d = start_paused(smx)
    qid = send(d.port, body_for("listing"),
               rcpts=("bob@example.com", "carol@example.com"))
    r = d.ctl("show", "queue")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2, r.stdout
    for line, rcpt in zip(lines, ("bob@example.com", "carol@example.com")):
        f = line.split()
        assert f[0] == qid and f[1] == "queued"
        kv = dict(x.split("=", 1) for x in f[2:])
        assert kv["tries"] == "0" and kv["next"] == "now"
        assert re.fullmatch(r"\d+s", kv["age"])
        assert kv["from"] == "<alice@sender.example>"
        assert kv["to"] == "<%s>" % rcpt
        assert kv["route"] == "forward"
        size = int(kv["size"])
    items = queue_json(d)
    assert [i["recipient"] for i in items] == ["bob@example.com",
                                               "carol@example.com"]
    for i in items:
        assert i["id"] == qid
        assert i["state"] == "queued"
        assert i["sender"] == "alice@sender.example"
        assert i["size"] == size
        assert i["tries"] == 0 and i["last_try"] == 0
        assert i["last_error"] == ""
        assert 0 <= i["age"] < 60
        assert abs(i["arrival"] - time.time()) < 60
        assert i["next_try"] >= i["arrival"]
        assert i["route"] == "forward"
        assert i["destination"] == "[127.0.0.1]:9"
    # The size is the file's: our Received header and the client's bytes.
    assert len(message_data(d, qid)) == size


def test_null_sender_listed_as_empty(smx):
    d = start_paused(smx)
    qid = send(d.port, body_for("bounce"), sender="")
    items = queue_json(d)
    assert items[0]["id"] == qid and items[0]["sender"] == ""
    assert "from=<> " in d.ctl("show", "queue").stdout


def test_queued_message_is_byte_exact(smx):
    d = start_paused(smx)
    sent = body_for("exact", 5000) + b"..leading dot line\r\nlast\r\n"
    qid = send(d.port, sent)
    data = message_data(d, qid)
    # smtplib dot-stuffs; the queue must hold the unstuffed text.
    assert strip_received(data) == sent
    assert b"id " + qid.encode() in data.split(b"\r\n\r\n")[0]
    assert listdir(spool(d, "incoming")) == []


def test_envelope_file_is_versioned_text(smx):
    d = start_paused(smx)
    qid = send(d.port, body_for("env"), rcpts=("bob@example.com",))
    assert listdir(spool(d, "queue")) == [qid + ".msg"]
    text = message_file(spool(d, "queue", qid + ".msg"))[1]
    lines = text.splitlines()
    assert lines[0] == "version=2"
    assert lines[-1] == "end="
    kv = [l.split("=", 1) for l in lines]
    assert ["id", qid] in kv
    assert ["rcpt", "bob@example.com"] in kv
    assert ["state", "queued"] in kv
    assert ["sender", "alice@sender.example"] in kv


def resident(path):
    """Bytes of path in the page cache (fincore, util-linux)."""
    r = subprocess.run(["fincore", "--bytes", "--noheadings",
                        "--output", "RES", path],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    return int(r.stdout.split()[0])


def test_waiting_message_keeps_no_page_cache(smx):
    """While the relay is paused a committed message is not read soon:
    its pages leave the cache once synced (the next message is written
    into them).  With the relay running they stay, for the relay."""
    d = start_paused(smx)
    body = body_for("uncached", 200000)
    qid = send(d.port, body)
    path = spool(d, "queue", qid + ".msg")
    assert os.path.getsize(path) > 200000
    assert resident(path) == 0
    assert strip_received(message_data(d, qid)) == body
    assert d.ctl("resume", "relay").returncode == 0
    qid = send(d.port, body)
    assert resident(spool(d, "queue", qid + ".msg")) > 100000


def test_queue_ids_unique_and_unguessable(smx):
    d = start_paused(smx)
    ids = [send(d.port, body_for("id%d" % i)) for i in range(20)]
    assert len(set(ids)) == 20
    now = int(time.time())
    for qid in ids:
        assert abs(int(qid[:8], 16) - now) < 120
    # 64 random bits: the random parts share no long prefix.
    rnd = sorted(q[8:] for q in ids)
    assert all(a[:6] != b[:6] for a, b in zip(rnd, rnd[1:]))


def test_stats_queue_counters(smx):
    d = start_paused(smx)
    for i in range(3):
        send(d.port, body_for("stat%d" % i))
    wait_for(lambda: d.status_json()["queue.messages"] == 3, 5,
             what="queue.messages == 3")
    time.sleep(1.1)
    wait_for(lambda: d.status_json()["queue.oldest_age"] >= 1, 10,
             what="queue.oldest_age >= 1")
    st = d.ctl_json("show", "stats")
    assert st["queue.commits"] == 3
    assert st["queue.fsyncs"] >= 3


# -- what a session that gives up leaves behind ----------------------------

def test_aborted_data_leaves_nothing(smx):
    d = start_paused(smx)
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"EHLO client.example\r\n")
    while f.readline()[3:4] == b"-":
        pass
    s.sendall(b"MAIL FROM:<a@sender.example>\r\nRCPT TO:<bob@example.com>"
              b"\r\nDATA\r\n")
    assert f.readline().startswith(b"250")
    assert f.readline().startswith(b"250")
    assert f.readline().startswith(b"354")
    s.sendall(b"Subject: half\r\n\r\n" + b"x" * 5000 + b"\r\n")
    wait_for(lambda: len(listdir(spool(d, "incoming"))) == 1, 5,
             what="message file in incoming/")
    f.close()
    s.close()
    wait_for(lambda: listdir(spool(d, "incoming")) == [], 5,
             what="incoming/ empty after the client left")
    assert listdir(spool(d, "queue")) == []
    assert queue_json(d) == []


def test_file_asked_for_at_rcpt_goes_back_when_unused(smx):
    """The message file is asked for at the first accepted RCPT: a
    transaction given up before DATA (RSET, a new MAIL after RSET, the
    client gone) leaves nothing in incoming/, and the one that sends
    DATA is committed whole."""
    d = start_paused(smx)
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"EHLO client.example\r\n")
    while f.readline()[3:4] == b"-":
        pass
    # Pipelined: two transactions given up, then one that is sent.
    s.sendall(b"MAIL FROM:<a@sender.example>\r\nRCPT TO:<bob@example.com>"
              b"\r\nRSET\r\nMAIL FROM:<a@sender.example>\r\n"
              b"RCPT TO:<bob@example.com>\r\nRSET\r\n"
              b"MAIL FROM:<a@sender.example>\r\nRCPT TO:<bob@example.com>"
              b"\r\nDATA\r\n")
    for _ in range(8):
        assert f.readline().startswith(b"250")
    assert f.readline().startswith(b"354")
    body = body_for("after-rset")
    s.sendall(body.replace(b"\r\n.", b"\r\n..") + b".\r\n")
    reply = f.readline()
    assert reply.startswith(b"250"), reply
    qid = re.search(rb"queued as ([0-9a-f]+)", reply).group(1).decode()
    # Lock-step: a RCPT answered, then the client leaves.
    s.sendall(b"MAIL FROM:<a@sender.example>\r\n")
    assert f.readline().startswith(b"250")
    s.sendall(b"RCPT TO:<bob@example.com>\r\n")
    assert f.readline().startswith(b"250")
    wait_for(lambda: len(incoming(d)) == 1, 5,
             what="the file asked for at RCPT, before DATA")
    f.close()
    s.close()
    wait_for(lambda: incoming(d) == [], 5,
             what="incoming/ empty after the transactions given up")
    assert [i["id"] for i in queue_json(d)] == [qid]
    assert strip_received(message_data(d, qid)) == body


# -- restarts and recovery --------------------------------------------------

def test_restart_keeps_the_queue(smx):
    d = start_paused(smx)
    ids = [send(d.port, body_for("keep%d" % i)) for i in range(5)]
    before = queue_json(d)
    assert d.stop() == 0
    start_recovered(d)
    after = queue_json(d)
    assert [i["id"] for i in after] == [i["id"] for i in before]
    assert sorted(set(i["id"] for i in after)) == sorted(ids)
    for a, b in zip(before, after):
        assert a["arrival"] == b["arrival"] and a["size"] == b["size"]
    assert re.search(r"event=recovered messages=5 partial=0 corrupt=0",
                     d.log())
    # New mail still goes in, next to the old.
    send(d.port, body_for("new"))
    assert len(queue_json(d)) == 6


def test_incoming_is_wiped_at_start(smx):
    d = start_paused(smx)
    qid = send(d.port, body_for("survivor"))
    d.stop()
    junk = "0123456789abcdef01234567"
    for name in (junk + ".msg", junk + ".env", "junk"):
        with open(spool(d, "incoming", name), "wb") as f:
            f.write(b"Subject: never acknowledged\r\n")
    # The envelope of a message whose removal was cut short.
    with open(spool(d, "queue", "00000001aaaaaaaaaaaaaaaa.env"), "wb") as f:
        f.write(b"version=2\n")
    start_recovered(d)
    assert incoming(d) == []
    # The survivor may already have been tried (the relay is not paused
    # after a restart) and so have its own state file beside it.
    assert listdir(spool(d, "queue")) in ([qid + ".msg"],
                                          [qid + ".env", qid + ".msg"])
    assert [i["id"] for i in queue_json(d)] == [qid]
    assert re.search(r"messages=1 partial=1 corrupt=0 incoming=3", d.log())


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong-size",
                                    "no-trailer", "binary", "env-garbage",
                                    "env-wrong-size"])
def test_corrupt_envelope_is_set_aside(smx, damage):
    d = start_paused(smx)
    good = send(d.port, body_for("good"))
    bad = send(d.port, body_for("bad"))
    d.stop()
    msg = spool(d, "queue", bad + ".msg")
    env = spool(d, "queue", bad + ".env")
    data, text = message_file(msg)
    text = text.encode()
    with open(msg, "rb") as f:
        whole = f.read()
    trailer = whole[-TRAILER_LEN:]
    if damage == "garbage":
        whole = data + re.sub(rb"state=\w+", b"state=\x1b[31mlost",
                              text) + trailer
    elif damage == "truncated":
        whole = whole[:len(data) + len(text) // 2]
    elif damage == "wrong-size":
        whole += b"appended later\r\n"
    elif damage == "no-trailer":
        whole = whole[:-TRAILER_LEN]
    elif damage == "binary":
        whole = data + os.urandom(4096)
    elif damage == "env-garbage":
        # A rewritten envelope overrides the embedded one: checked too.
        with open(env, "wb") as f:
            f.write(re.sub(rb"rcpts=\d+", b"rcpts=7", text))
    elif damage == "env-wrong-size":
        with open(env, "wb") as f:
            f.write(re.sub(rb"(?m)^size=\d+$", b"size=5", text))
    with open(msg, "wb") as f:
        f.write(whole)
    start_recovered(d)
    assert d.running()
    assert [i["id"] for i in queue_json(d)] == [good]
    assert bad + ".msg" in listdir(spool(d, "corrupt"))
    assert not [n for n in listdir(spool(d, "queue")) if n.startswith(bad)]
    assert re.search(r"id=%s event=corrupt reason=" % bad, d.log())
    assert re.search(r"messages=1 partial=0 corrupt=1", d.log())
    # The daemon works on: new mail is accepted and listed.
    send(d.port, body_for("after"))
    assert len(queue_json(d)) == 2


def test_stray_file_in_queue_is_set_aside(smx):
    d = start_paused(smx)
    d.stop()
    with open(spool(d, "queue", "notes.txt"), "w") as f:
        f.write("an operator's note\n")
    start_recovered(d)
    assert "notes.txt" in listdir(spool(d, "corrupt"))
    assert queue_json(d) == []


# -- the crash test ---------------------------------------------------------

class Sender(threading.Thread):
    """One SMTP session sending messages until the daemon dies.

    acked: (id, bytes) for every 250; sent: every body whose end of
    data went out (acknowledged or not)."""

    def __init__(self, port, n, stop):
        super().__init__(daemon=True)
        self.port, self.n, self.stop = port, n, stop
        self.acked, self.sent = [], []
        self.error = None

    def run(self):
        rnd = random.Random(self.n)
        try:
            s = smtplib.SMTP("127.0.0.1", self.port, timeout=30)
            s.ehlo("client%d.example" % self.n)
            k = 0
            while not self.stop.is_set():
                tag = "s%dm%d" % (self.n, k)
                body = body_for(tag, rnd.choice([200, 1000, 5000, 40000]))
                k += 1
                if s.mail("sender%d@client.example" % self.n)[0] != 250:
                    break
                if s.rcpt("r%d@example.com" % self.n)[0] != 250:
                    break
                self.sent.append(body)
                code, resp = s.data(body)
                if code != 250:
                    break
                self.acked.append((ID_RE.search(resp.decode()).group(1),
                                   body))
        except (OSError, smtplib.SMTPException) as e:
            self.error = e


def test_crash_kill9_keeps_every_acknowledged_message(smx):
    """200 sessions send; kill -9 of every process at a random moment;
    restart: every message that got a 250 is queued, complete and
    byte-exact, and nothing else is half there.  Three rounds, each on
    top of what the previous ones left."""
    d = start_paused(smx, "limit sessions 1000\nlimit sessions-per-ip 1000\n")
    acked, sent = {}, set()
    rng = random.Random()
    for rnd in range(3):
        stop = threading.Event()
        senders = [Sender(d.port, 1000 * rnd + n, stop) for n in range(200)]
        t0 = time.monotonic()
        for s in senders:
            s.start()
        want = rng.randint(100, 600)
        wait_for(lambda: sum(len(s.acked) for s in senders) >= want, 60,
                 what="%d acknowledged messages" % want)
        time.sleep(rng.uniform(0, 1.0))
        d.kill9()
        elapsed = time.monotonic() - t0
        stop.set()
        for s in senders:
            s.join(30)
        new = {qid: body for s in senders for qid, body in s.acked}
        assert not set(new) & set(acked), "an id was given out twice"
        acked.update(new)
        sent |= set(b for s in senders for b in s.sent)
        in_flight = sum(len(s.sent) - len(s.acked) for s in senders)

        start_recovered(d)
        queued = {i["id"] for i in queue_json(d)}
        assert incoming(d) == []
        assert listdir(spool(d, "corrupt")) == []
        lost = [q for q in acked if q not in queued]
        assert not lost, "%d of %d acknowledged messages lost" % (
            len(lost), len(acked))
        for qid, body in acked.items():
            assert strip_received(message_data(d, qid)) == body, qid
        # Committed but not acknowledged (the kill beat the 250):
        # allowed, but only whole, and only what a client really sent.
        extra = queued - set(acked)
        for qid in extra:
            assert strip_received(message_data(d, qid)) in sent, qid
        names = listdir(spool(d, "queue"))
        assert [n for n in names if n.endswith(".msg")] == sorted(
            q + ".msg" for q in queued)
        assert all(n[:-4] in queued for n in names if n.endswith(".env"))
        print("crash round %d: %d acknowledged in %.1fs, %d with data sent "
              "but no reply, %d queued after restart, %d of them without "
              "a 250" % (rnd, len(new), elapsed, in_flight, len(queued),
                         len(extra)))


# -- the unit test of the format, run from here too -------------------------

def test_queue_fs_unit():
    exe = os.path.join(OBJ, "regress", "queue_fs_test")
    if not os.path.exists(exe):
        pytest.skip("%s not built" % exe)
    r = subprocess.run([exe], capture_output=True, timeout=120)
    out = r.stdout.decode("utf-8", "replace")
    assert r.returncode == 0, out + r.stderr.decode("utf-8", "replace")
    assert "not ok" not in out
    # Whatever damage recovery met, its log lines stay printable text.
    assert all(b >= 0x20 or b in b"\n\t" for b in r.stderr)
