#!/usr/bin/python3
"""A demo receiving mail system: prints every message it is given."""
import signal
import sys

from aiosmtpd.controller import Controller


class Printer:
    def __init__(self, name):
        self.name = name

    async def handle_DATA(self, server, session, envelope):
        data = envelope.original_content or envelope.content
        head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
        print("\n[%s system] got a message from <%s> for %s\n%s\n" % (
            self.name, envelope.mail_from,
            ", ".join("<%s>" % r for r in envelope.rcpt_tos),
            "\n".join("    " + ln for ln in head.splitlines())),
            flush=True)
        return "250 2.0.0 accepted by the %s system" % self.name


def main():
    name, port = sys.argv[1], int(sys.argv[2])
    try:
        c = Controller(Printer(name), hostname="127.0.0.1", port=port)
        c.start()
    except OSError as e:
        sys.exit("demo sink %s: 127.0.0.1:%d: %s" % (name, port, e))
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    try:
        while True:
            signal.pause()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        c.stop()


if __name__ == "__main__":
    main()
