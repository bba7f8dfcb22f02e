"""Control plane under load (issue 7): reloads while mail flows, and
counters that are exact after a known workload."""
import json
import os
import smtplib
import threading
import time
import urllib.request

from conftest import Sink, free_port, wait_for

CONF = """
trusted 10.255.255.0/24
table people file "{tmp}/directory"
domain "example.com" {{
	type authoritative
	directory people
	local to "[127.0.0.1]:%d" tls none
	unknown reject
}}
retry 1s to 2s expire 5m
"""


def write_directory(path, users):
    tmp = path + ".new"
    with open(tmp, "w") as f:
        for u in users:
            f.write("%s@example.com local\n" % u)
    os.rename(tmp, path)


def test_reload_100_times_under_load(smx):
    sink = Sink()
    try:
        users = ["user%d" % i for i in range(20)]
        write_directory(os.path.join(smx.tmp, "directory"), users)
        d = smx.start(CONF % sink.port)
        good = open(d.conf_path).read()
        acked, errors = {}, []
        lock = threading.Lock()

        def client(k):
            try:
                s = smtplib.SMTP("127.0.0.1", d.port, timeout=60)
                s.ehlo("load%d.example" % k)
                for i in range(100):
                    mid = "<load-%d-%d@test>" % (k, i)
                    body = ("From: a@sender.org\r\nTo: user%d@example.com"
                            "\r\nMessage-ID: %s\r\nSubject: %d/%d\r\n\r\n"
                            "body %d %d\r\n" % (k, mid, k, i, k, i))
                    s.sendmail("a@sender.org", ["user%d@example.com" % k],
                               body)
                    with lock:
                        acked[mid] = True
                s.quit()
            except Exception as e:     # a cut session fails the test
                with lock:
                    errors.append("client %d: %r" % (k, e))

        threads = [threading.Thread(target=client, args=(k,))
                   for k in range(20)]
        for t in threads:
            t.start()
        applied = refused = 0
        for r in range(100):
            if r % 2:
                with open(d.conf_path, "w") as f:
                    f.write(good + "limit recipients lots\n")
                res = d.ctl("reload")
                assert res.returncode == 1, res.stdout
                assert "%s:" % d.conf_path in res.stderr
                refused += 1
                with open(d.conf_path, "w") as f:
                    f.write(good)
            else:
                users.append("new%d" % r)
                write_directory(os.path.join(smx.tmp, "directory"), users)
                res = d.ctl("reload")
                assert res.returncode == 0, res.stderr
                applied += 1
                # The new recipient is accepted right after the reload.
                s = smtplib.SMTP("127.0.0.1", d.port, timeout=30)
                s.ehlo("check.example")
                s.mail("a@sender.org")
                code, _ = s.rcpt("new%d@example.com" % r)
                assert code == 250, (r, code)
                s.quit()
        for t in threads:
            t.join(300)
        assert not errors, errors[:5]
        assert len(acked) == 2000
        assert applied == 50 and refused == 50
        assert d.ctl_json("show", "status")["generation"] == 51

        def arrived():
            with sink.lock:
                got = set()
                for m in sink.messages:
                    for line in m["data"].split(b"\r\n"):
                        if line.lower().startswith(b"message-id:"):
                            got.add(line.split(b":", 1)[1].strip().decode())
            return got
        wait_for(lambda: set(acked) <= arrived(), 120,
                 what="every acknowledged message at the sink")
        assert d.running()
    finally:
        sink.stop()


def test_counters_exact_after_known_workload(smx):
    sink = Sink()
    try:
        write_directory(os.path.join(smx.tmp, "directory"),
                        ["alice", "bob"])
        mport = free_port()
        d = smx.start(CONF % sink.port +
                      "metrics listen on 127.0.0.1 port %d\n" % mport)
        # The readiness probe of the fixture was a session too.
        base = wait_for(lambda: (lambda st: st if st["sessions.active"] == 0
                                 and st["sessions.total"] >= 1 else None)(
            d.status_json()), 10, what="the probe session to end")
        base = base["sessions.total"]
        # 5 sessions; 7 messages; 14 local recipients; 5 rejected.
        sent = 0
        for k in range(5):
            s = smtplib.SMTP("127.0.0.1", d.port, timeout=30)
            s.ehlo("counter.example")
            n = 2 if k < 2 else 1
            for _ in range(n):
                s.mail("a@sender.org")
                for r in ("alice", "bob"):
                    assert s.rcpt("%s@example.com" % r)[0] == 250
                if k < 3:
                    assert s.rcpt("nobody%d@example.com" % k)[0] == 550
                s.data(b"Subject: c\r\n\r\nx\r\n")
                sent += 1
            s.quit()
        assert sent == 7
        sink.wait(7, 60)

        def settled():
            st = d.status_json()
            return st if (st["messages.delivered"] == 7 and
                          st["sessions.active"] == 0 and
                          st["queue.messages"] == 0) else None
        st = wait_for(settled, 30, what="counters to settle")
        assert st["sessions.total"] - base == 5
        assert st["messages.accepted"] == 7
        assert st["recipients.local"] == 14
        assert st["recipients.rejected"] == 5
        assert st["recipients.custom"] == 0
        assert st["messages.bounced"] == 0
        body = urllib.request.urlopen(
            "http://127.0.0.1:%d/metrics" % mport, timeout=5).read().decode()
        vals = {}
        for line in body.splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                vals[k] = float(v)
        assert vals["splitmx_messages_accepted_total"] == 7
        assert vals["splitmx_messages_delivered_total"] == 7
        assert vals["splitmx_recipients_local_total"] == 14
        assert vals["splitmx_recipients_rejected_total"] == 5
        assert vals["splitmx_sessions_total"] - base == 5
        assert vals["splitmx_sessions_active"] == 0
        stats = dict(l.split("=", 1) for l in
                     d.ctl("show", "stats").stdout.splitlines())
        assert stats["messages.delivered"] == "7"
    finally:
        sink.stop()
