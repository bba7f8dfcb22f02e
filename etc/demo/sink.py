#!/usr/bin/python3
"""A demo receiving mail system: prints every message it is given."""
import asyncio
import sys

from aiosmtpd.controller import Controller


class Printer:
    def __init__(self, name):
        self.name = name

    async def handle_DATA(self, server, session, envelope):
        data = envelope.original_content or envelope.content
        head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
        print("\n[%s] message from %s for %s\n%s\n" % (
            self.name, envelope.mail_from, ", ".join(envelope.rcpt_tos),
            "\n".join("    " + l for l in head.splitlines())), flush=True)
        return "250 2.0.0 accepted by the %s system" % self.name


def main():
    name, port = sys.argv[1], int(sys.argv[2])
    c = Controller(Printer(name), hostname="127.0.0.1", port=port)
    c.start()
    try:
        asyncio.get_event_loop().run_forever()
    except KeyboardInterrupt:
        pass
    finally:
        c.stop()


if __name__ == "__main__":
    main()
