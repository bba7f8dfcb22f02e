"""The world of the DANE and MTA-STS tests: splitmx relaying example.com
to a destination reached through DNS (nsd serving signed zones, see
dnssec_zones.py), SMTP sinks with or without STARTTLS on loopback, and
what the relay logs for each delivery:

    msgid=... event=delivery to=<rcpt> relay=host[ip]:port status=sent
        reply="250 ..." tls=TLSv1.3 verified=dane
"""
import email
import email.policy
import re
import smtplib
import threading

from conftest import free_port, wait_for

DELIVERY_RE = re.compile(
    r'msgid=(?P<msgid>\S+) event=delivery to=<(?P<to>[^>]*)> '
    r'relay=(?P<relay>\S+) status=(?P<status>\w+) '
    r'reply="(?P<reply>[^"]*)" tls=(?P<tls>\S+) verified=(?P<verified>\S+)')
ID_RE = re.compile(r"queued as ([0-9a-f]{24})")
SENDER = "alice@sender.example"


class Sink:
    """An aiosmtpd server on 127.0.0.1; with tls_context it offers
    STARTTLS.  messages records whether each came over TLS; rcpt(address)
    may return a reply to a RCPT (None: accept)."""

    def __init__(self, port=None, tls_context=None, rcpt=None):
        from aiosmtpd.controller import Controller
        self.port = port or free_port()
        self.rcpt_hook = rcpt
        self.messages = []
        self.lock = threading.Lock()
        kw = {"tls_context": tls_context} if tls_context else {}
        self.controller = Controller(self, hostname="127.0.0.1",
                                     port=self.port, **kw)
        self.controller.start()

    async def handle_RCPT(self, server, session, envelope, address,
                          rcpt_options):
        reply = self.rcpt_hook(address) if self.rcpt_hook else None
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append({
                "from": envelope.mail_from,
                "rcpts": list(envelope.rcpt_tos),
                "data": envelope.original_content or envelope.content,
                "tls": session.ssl is not None,
            })
        return "250 2.0.0 OK"

    def wait(self, n, timeout=30):
        wait_for(lambda: len(self.messages) >= n, timeout,
                 what="%d messages at port %d" % (n, self.port))
        return self.messages

    def stop(self):
        self.controller.stop()


class TlsWorld:
    """splitmx with example.com relayed to dest (host syntax) under a
    TLS policy, sender.example (the DSNs) to a plain sink, the zones'
    nsd as resolver and their anchor as the trust anchor."""

    def __init__(self, smx, zones):
        self.smx, self.zones = smx, zones
        self.daemon = None

    def body(self, dest, tls, conf=""):
        text = ('resolver "127.0.0.1:%d"\ntrust-anchor "%s"\n'
                'domain "example.com" {\n\ttype relay\n'
                '\tforward to "%s" tls %s\n}\n' %
                (self.zones.port, self.zones.anchor_file, dest, tls))
        if getattr(self, "dsn", None) is not None:
            text += ('domain "sender.example" {\n\ttype relay\n'
                     '\tforward to "[127.0.0.1]:%d" tls none\n}\n' %
                     self.dsn.port)
        return (text + conf + "\n").replace("{", "{{").replace("}", "}}")

    def start(self, dest, tls, conf="", dsn=None):
        self.dsn = dsn
        self.dest, self.tls, self.conf = dest, tls, conf
        self.daemon = self.smx.start(self.body(dest, tls, conf))
        return self.daemon

    def send(self, rcpt="bob@example.com", data=None):
        rcpts = [rcpt] if isinstance(rcpt, str) else list(rcpt)
        data = data or (b"From: <%s>\r\nTo: <%s>\r\nSubject: tls\r\n\r\n"
                        b"Hello.\r\n" % (SENDER.encode(), rcpts[0].encode()))
        with smtplib.SMTP("127.0.0.1", self.daemon.port, timeout=30) as c:
            c.ehlo("client.example")
            code, resp = c.mail(SENDER)
            assert code == 250, resp
            for r in rcpts:
                code, resp = c.rcpt(r)
                assert code == 250, resp
            code, resp = c.data(data)
            assert code == 250, resp
            return ID_RE.search(resp.decode()).group(1)

    def deliveries(self, rcpt=None):
        out = [m.groupdict() for m in DELIVERY_RE.finditer(self.daemon.log())]
        return [d for d in out if rcpt is None or d["to"] == rcpt]

    def delivery(self, rcpt="bob@example.com", status=None, timeout=30):
        """The first delivery line for rcpt (with that status)."""
        def find():
            for d in self.deliveries(rcpt):
                if status is None or d["status"] == status:
                    return d
            return None
        try:
            return wait_for(find, timeout, interval=0.05,
                            what="delivery of <%s>" % rcpt)
        except TimeoutError:
            raise AssertionError("no delivery line for <%s>:\n%s" %
                                 (rcpt, self.daemon.log()[-6000:]))

    def stat(self, name):
        return self.daemon.status_json().get(name, 0)


def parse_dsn(data):
    """(the human part's text, [per-recipient fields]) of a delivery
    status notification as it arrived."""
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report", msg
    parts = msg.get_payload()
    blocks = parts[1].get_payload()
    return parts[0].get_content(), blocks[1:]
