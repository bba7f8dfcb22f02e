#!/usr/bin/python3
"""Test milter built on python3-milter (libmilter bindings), for
regress/test_milter.py.  Run with /usr/bin/python3.

    pymilter_server.py --port PORT [--host 127.0.0.1] [--log FILE.jsonl]
                       [--unix PATH] [--symlist] [--leadspc] [--noreply]

With --unix it listens on that unix socket instead of the TCP port.

What it does is chosen by the message (all matching is case-insensitive):

Envelope stage (decided in the callback itself):
  HELO name starting "reject"     -> 550 5.7.1 at HELO (setreply + REJECT)
  MAIL FROM local part "reject-mail"     -> REPLYCODE 550 5.7.1 at MAIL
  MAIL FROM local part "tempfail-mail"   -> REPLYCODE 451 4.7.1 at MAIL
  RCPT TO local part "reject-rcpt"       -> REPLYCODE 550 5.1.1 for that RCPT only
  RCPT TO local part "tempfail-rcpt"     -> REPLYCODE 451 4.2.0 for that RCPT only
  RCPT TO local part "discard-rcpt"      -> DISCARD at RCPT (whole message)
  RCPT TO local part "accept-rcpt"       -> ACCEPT at RCPT (no more events this message)

End of message: the Subject is split into words; each word is an action:
  reject        setreply 550 5.7.1 "Rejected by pymilter (custom text)" + REJECT
  reject-plain  REJECT without setreply  (-> SMFIR_REJECT 'r')
  mlreply       multi-line setreply 550 5.7.1 "first line" / "second line" + REJECT
  tempfail      setreply 451 4.7.1 "Tempfail by pymilter, try later" + TEMPFAIL
  tempfail-plain TEMPFAIL without setreply (-> 't')
  discard       DISCARD
  quarantine    quarantine("held by pymilter") then ACCEPT
  addheader     addheader("X-PyMilter-Added", "yes")
  insheader     addheader("X-PyMilter-Inserted", "top", idx=0)   (-> INSHEADER)
  chgheader     chgheader("X-Change-Me", 1, "changed by pymilter")
  delheader     chgheader("X-Delete-Me", 1, "")                  (delete)
  replbody      replacebody(b"Body replaced by pymilter.\\r\\n")
  bigbody       replacebody with 200000 bytes (libmilter splits into 65535 chunks)
  addrcpt       addrcpt("<added@example.net>")
  addrcptpar    addrcpt("<addedpar@example.net>", "NOTIFY=NEVER") (-> ADDRCPT_PAR)
  delrcpt       delrcpt(<first RCPT seen>)
  chgfrom       chgfrom("<changed@example.test>")
  chgfrompar    chgfrom("<changed@example.test>", "BODY=8BITMIME")
  all           addheader insheader chgheader delheader replbody addrcpt delrcpt chgfrom
  progressN     N x (progress(); sleep 1)  e.g. "progress5"   (-> SMFIR_PROGRESS)
  sleepN        sleep N seconds without progress, e.g. "sleep40"
  accept        return ACCEPT (default is CONTINUE at EOM, which the MTA treats as accept)
A word not listed is ignored.

Every callback is logged as one JSON object per line in --log, with the values of
the macros the spec names (so a test can check what the MTA sent):
  {"cb": "envrcpt", "args": [...], "macros": {"{rcpt_addr}": "...", ...}, "t": ...}
"""
import argparse
import json
import os
import sys
import threading
import time

import Milter

LOG = None
LOG_LOCK = threading.Lock()
MACROS = ["j", "{daemon_name}", "{daemon_addr}", "{if_addr}", "{client_addr}",
          "{client_port}", "{client_name}", "_", "{tls_version}", "{cipher}",
          "{cipher_bits}", "i", "{mail_addr}", "{rcpt_addr}", "{rcpt_mailer}",
          "{auth_authen}", "{splitmx_extra}"]


def log(obj):
    obj["t"] = round(time.time(), 3)
    line = json.dumps(obj, default=str)
    with LOG_LOCK:
        if LOG:
            LOG.write(line + "\n")
            LOG.flush()


class TestMilter(Milter.Base):
    def __init__(self):
        self.id = Milter.uniqueID()
        self.rcpts = []
        self.subject = ""
        self.headers = []

    def _log(self, cb, *args):
        m = {}
        for name in MACROS:
            try:
                v = self.getsymval(name)
            except Exception:
                v = None
            if v is not None:
                m[name] = v
        log({"conn": self.id, "cb": cb, "args": list(args), "macros": m})

    SYMLIST = False

    def negotiate(self, opts):
        """Like Milter.Base.negotiate, but logs what it decided (and errors)."""
        try:
            self._actions, p, f1, f2 = opts
            if self.SYMLIST:
                # python3-milter 1.0.5's setsymlist() passes bytes to the C
                # extension, which wants str: call the context directly.
                self._ctx.setsymlist(Milter.M_ENVRCPT, "{rcpt_addr} {rcpt_mailer}")
                self._ctx.setsymlist(Milter.M_EOM, "i {client_addr}")
            opts[1] = self._protocol = p & ~self.protocol_mask()
            opts[2] = 0
            opts[3] = 0
            log({"cb": "negotiate", "args": [hex(self._actions), hex(p), hex(opts[1])]})
        except Exception as e:
            log({"cb": "negotiate-error", "args": [repr(e)]})
            return Milter.ALL_OPTS
        return Milter.CONTINUE

    def connect(self, hostname, family, hostaddr):
        self._log("connect", hostname, family, hostaddr)
        return Milter.CONTINUE

    def hello(self, name):
        self._log("hello", name)
        if name.lower().startswith("reject"):
            self.setreply("550", "5.7.1", "HELO rejected by pymilter")
            return Milter.REJECT
        return Milter.CONTINUE

    def envfrom(self, f, *params):
        self._log("envfrom", f, *params)
        self.rcpts = []
        self.subject = ""
        self.headers = []
        lp = f.strip("<>").split("@")[0].lower()
        if lp == "reject-mail":
            self.setreply("550", "5.7.1", "Sender rejected by pymilter")
            return Milter.REJECT
        if lp == "tempfail-mail":
            self.setreply("451", "4.7.1", "Sender tempfailed by pymilter")
            return Milter.TEMPFAIL
        return Milter.CONTINUE

    def envrcpt(self, to, *params):
        self._log("envrcpt", to, *params)
        lp = to.strip("<>").split("@")[0].lower()
        if lp == "reject-rcpt":
            self.setreply("550", "5.1.1", "Recipient rejected by pymilter")
            return Milter.REJECT
        if lp == "tempfail-rcpt":
            self.setreply("451", "4.2.0", "Recipient tempfailed by pymilter")
            return Milter.TEMPFAIL
        if lp == "discard-rcpt":
            return Milter.DISCARD
        if lp == "accept-rcpt":
            return Milter.ACCEPT
        self.rcpts.append(to)
        return Milter.CONTINUE

    def data(self):
        self._log("data")
        return Milter.CONTINUE

    def header(self, name, value):
        self._log("header", name, value)
        self.headers.append((name, value))
        if name.lower() == "subject":
            self.subject = value
        return Milter.CONTINUE

    def eoh(self):
        self._log("eoh")
        return Milter.CONTINUE

    def body(self, chunk):
        self._log("body", len(chunk))
        return Milter.CONTINUE

    def eom(self):
        self._log("eom", self.subject)
        words = self.subject.lower().split()
        if "all" in words:
            words += ["addheader", "insheader", "chgheader", "delheader",
                      "replbody", "addrcpt", "delrcpt", "chgfrom"]
        result = Milter.CONTINUE
        for w in words:
            if w.startswith("progress") and w[8:].isdigit():
                for _ in range(int(w[8:])):
                    self.progress()
                    time.sleep(1)
            elif w.startswith("sleep") and w[5:].isdigit():
                time.sleep(int(w[5:]))
        for w in words:
            if w == "addheader":
                self.addheader("X-PyMilter-Added", "yes")
            elif w == "insheader":
                self.addheader("X-PyMilter-Inserted", "top", 0)
            elif w == "chgheader":
                self.chgheader("X-Change-Me", 1, "changed by pymilter")
            elif w == "delheader":
                self.chgheader("X-Delete-Me", 1, "")
            elif w == "replbody":
                self.replacebody(b"Body replaced by pymilter.\r\n")
            elif w == "bigbody":
                self.replacebody((b"x" * 78 + b"\r\n") * 2500)   # 200000 bytes
            elif w == "addrcpt":
                self.addrcpt("<added@example.net>")
            elif w == "addrcptpar":
                self.addrcpt("<addedpar@example.net>", "NOTIFY=NEVER")
            elif w == "delrcpt" and self.rcpts:
                self.delrcpt(self.rcpts[0])
            elif w == "chgfrom":
                self.chgfrom("<changed@example.test>")
            elif w == "chgfrompar":
                self.chgfrom("<changed@example.test>", "BODY=8BITMIME")
            elif w == "quarantine":
                self.quarantine("held by pymilter")
                result = Milter.ACCEPT
            elif w == "accept":
                result = Milter.ACCEPT
        for w in words:
            if w == "reject":
                self.setreply("550", "5.7.1", "Rejected by pymilter (custom text)")
                return Milter.REJECT
            if w == "mlreply":
                self.setreply("550", "5.7.1", "first line", "second line")
                return Milter.REJECT
            if w == "reject-plain":
                return Milter.REJECT
            if w == "tempfail":
                self.setreply("451", "4.7.1", "Tempfail by pymilter, try later")
                return Milter.TEMPFAIL
            if w == "tempfail-plain":
                return Milter.TEMPFAIL
            if w == "discard":
                return Milter.DISCARD
        return result

    def abort(self):
        self._log("abort")
        return Milter.CONTINUE

    def close(self):
        self._log("close")
        return Milter.CONTINUE


def main():
    global LOG
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--log")
    ap.add_argument("--unix", help="listen on this unix socket path")
    ap.add_argument("--timeout", type=int, default=600,
                    help="libmilter's own read timeout (s)")
    ap.add_argument("--symlist", action="store_true",
                    help="ask for macro lists in OPTNEG: RCPT {rcpt_addr} {rcpt_mailer}, EOM i")
    ap.add_argument("--leadspc", action="store_true",
                    help="negotiate SMFIP_HDR_LEADSPC")
    ap.add_argument("--noreply", action="store_true",
                    help="ask no-reply (SMFIP_NR_*) for connect/helo/header/eoh/body")
    a = ap.parse_args()
    if a.log:
        LOG = open(a.log, "a", buffering=1)
    cls = TestMilter
    if a.symlist:
        cls.SYMLIST = True
    if a.noreply:
        for n in ("connect", "hello", "header", "eoh", "body"):
            setattr(cls, n, Milter.noreply(getattr(cls, n)))
    if a.leadspc:
        cls = Milter.header_leading_space(cls)
    Milter.factory = cls
    sock = "inet:%d@%s" % (a.port, a.host)
    if a.unix:
        sock = "unix:" + a.unix
    log({"cb": "start", "args": [sock, os.getpid()]})
    sys.stdout.write("pymilter_server listening on %s pid %d\n" % (sock, os.getpid()))
    sys.stdout.flush()
    Milter.runmilter("pymilter-test", sock, a.timeout)
    log({"cb": "exit"})


if __name__ == "__main__":
    main()
