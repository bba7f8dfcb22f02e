"""DNSSEC-signed test zones served by nsd on loopback (DANE, MTA-STS).

    z = DnssecZones(tmpdir)                  # the anchor zone "example."
    z.add_zone("dane.example")               # signed, its DS in example.
    z.add_zone("plain.example", signed=False)    # provably insecure
    z.add_zone("bogus.example", bogus=True)  # signatures corrupted
    z.add("dane.example", "@ MX 10 mx.dane.example.")
    z.add("dane.example", "mx A 127.0.0.1")
    z.add_tlsa("dane.example", "mx.dane.example", 2525, "cert.pem", 3, 1, 1)
    z.start()        # keys, signatures, nsd -d on 127.0.0.1:z.port
    # splitmx: resolver "127.0.0.1:{z.port}", trust-anchor "{z.anchor_file}"
    z.reload()       # after changes: signed again, nsd told (SIGHUP)
    z.stop()

Every zone is under the anchor zone, whose DS record is the trust anchor
the daemon gets: libunbound forwards to nsd and validates from there
(nsd answers the DS queries from the parent zone it also serves).  A
zone with signed=False is delegated without DS (insecure); bogus=True
signs it and then flips a byte in the signatures of MX, A, AAAA, TLSA
and TXT records (bogus).  Keys are ECDSA P-256 (algorithm 13), made by
ldns-keygen and used as combined signing keys; ldns-signzone signs.
Needs the Debian packages nsd, ldnsutils and openssl.
"""
import base64
import hashlib
import os
import signal
import socket
import subprocess
import time

from conftest import free_udp_tcp_port

NSD = "/usr/sbin/nsd"


def tlsa_data(certfile, usage, selector, mtype):
    """The rdata "U S M HEX" of a TLSA record for the first certificate
    of a PEM file: selector 0 the certificate, 1 its public key (DER);
    matching type 0 the data, 1 its SHA-256, 2 its SHA-512."""
    with open(certfile) as f:
        pem = f.read()
    begin = pem.index("-----BEGIN CERTIFICATE-----")
    end = pem.index("-----END CERTIFICATE-----", begin) + 25
    pem = pem[begin:end] + "\n"
    der = subprocess.run(["openssl", "x509", "-outform", "DER"],
                         input=pem.encode(), capture_output=True,
                         check=True).stdout
    if selector == 1:
        pub = subprocess.run(["openssl", "x509", "-noout", "-pubkey"],
                             input=pem.encode(), capture_output=True,
                             check=True).stdout
        der = subprocess.run(["openssl", "pkey", "-pubin", "-outform",
                              "DER"], input=pub, capture_output=True,
                             check=True).stdout
    data = {0: lambda d: d, 1: lambda d: hashlib.sha256(d).digest(),
            2: lambda d: hashlib.sha512(d).digest()}[mtype](der)
    return "%d %d %d %s" % (usage, selector, mtype, data.hex())


class Zone:
    def __init__(self, name, signed, bogus, expired):
        self.name = name
        self.signed, self.bogus, self.expired = signed, bogus, expired
        self.records = []       # zone file lines, relative to the zone
        self.key = None         # ldns key files, without .key/.private
        self.ds = None


class DnssecZones:
    BOGUS_TYPES = ("MX", "A", "AAAA", "TLSA", "TXT")

    def __init__(self, workdir, anchor="example"):
        self.dir = os.path.abspath(str(workdir))
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_udp_tcp_port()
        self.anchor = anchor
        self.anchor_file = os.path.join(self.dir, "trust-anchor")
        self.zones = {}
        self.proc = None
        self.serial = int(time.time())
        self.add_zone(anchor)

    def add_zone(self, name, signed=True, bogus=False, expired=False):
        name = name.rstrip(".").lower()
        assert name == self.anchor or name.endswith("." + self.anchor)
        self.zones[name] = Zone(name, signed, bogus, expired)

    def add(self, zone, line):
        self.zones[zone].records.append(line)

    def add_tlsa(self, zone, host, port, certfile, usage, selector, mtype):
        data = tlsa_data(certfile, usage, selector, mtype)
        self.add(zone, "_%d._tcp.%s. 300 IN TLSA %s" % (port, host, data))
        return data

    def clear(self, zone):
        self.zones[zone].records = []

    def _run(self, *args):
        r = subprocess.run(args, cwd=self.dir, capture_output=True,
                           text=True)
        if r.returncode != 0:
            raise RuntimeError("%s: %s%s" % (" ".join(args), r.stdout,
                                              r.stderr))
        return r.stdout

    def _parent(self, name):
        labels = name.split(".")
        for i in range(1, len(labels)):
            if ".".join(labels[i:]) in self.zones:
                return ".".join(labels[i:])
        return None

    def _zone_text(self, z):
        lines = ["$ORIGIN %s." % z.name, "$TTL 300",
                 "@ IN SOA ns.%s. hostmaster.%s. %d 3600 600 86400 300" %
                 (self.anchor, self.anchor, self.serial),
                 "@ IN NS ns.%s." % self.anchor]
        if z.name == self.anchor:
            lines.append("ns IN A 127.0.0.1")
        for c in sorted(self.zones.values(), key=lambda c: c.name):
            if self._parent(c.name) == z.name:
                lines.append("%s. IN NS ns.%s." % (c.name, self.anchor))
                if c.signed:
                    lines.append(c.ds)
        return "\n".join(lines + z.records) + "\n"

    def _corrupt(self, path):
        out = []
        with open(path) as f:
            for line in f:
                w = line.split()
                if (len(w) > 12 and w[3] == "RRSIG" and
                        w[4] in self.BOGUS_TYPES):
                    sig = bytearray(base64.b64decode("".join(w[12:])))
                    sig[len(sig) // 2] ^= 0xff
                    line = "\t".join(w[:12] + [base64.b64encode(
                        bytes(sig)).decode()]) + "\n"
                out.append(line)
        with open(path, "w") as f:
            f.write("".join(out))

    def build(self):
        """Keys (once), zone files, signatures, nsd.conf, the anchor."""
        self.serial += 1
        for z in self.zones.values():
            if z.signed and z.key is None:
                base = self._run("ldns-keygen", "-a", "ECDSAP256SHA256",
                                 "-k", z.name + ".").strip()
                z.key = os.path.join(self.dir, base)
                with open(z.key + ".ds") as f:
                    z.ds = f.read().strip()
        conf = ["server:",
                "  ip-address: 127.0.0.1@%d" % self.port,
                "  port: %d" % self.port,
                "  do-ip6: no",
                "  server-count: 1",
                '  username: ""',
                '  chroot: ""',
                '  zonesdir: "%s"' % self.dir,
                '  database: ""',
                '  zonelistfile: "%s/zone.list"' % self.dir,
                '  pidfile: "%s/nsd.pid"' % self.dir,
                '  xfrdfile: "%s/xfrd.state"' % self.dir,
                '  xfrdir: "%s"' % self.dir,
                '  logfile: "%s/nsd.log"' % self.dir,
                "remote-control:",
                "  control-enable: no"]
        for z in self.zones.values():
            src = os.path.join(self.dir, z.name + ".zone")
            with open(src, "w") as f:
                f.write(self._zone_text(z))
            served = src
            if z.signed:
                served = src + ".signed"
                args = ["ldns-signzone", "-o", z.name + ".", "-f", served]
                if z.expired:
                    args += ["-i", "20190101000000", "-e", "20200101000000"]
                self._run(*(args + [src, z.key]))
                if z.bogus:
                    self._corrupt(served)
            conf += ["zone:", '  name: "%s."' % z.name,
                     '  zonefile: "%s"' % served]
        self.conf = os.path.join(self.dir, "nsd.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(conf) + "\n")
        with open(self.anchor_file, "w") as f:
            f.write(self.zones[self.anchor].ds + "\n")
        os.chmod(self.anchor_file, 0o644)

    def start(self, timeout=10):
        self.build()
        log = open(os.path.join(self.dir, "nsd.stderr"), "a")
        self.proc = subprocess.Popen([NSD, "-d", "-c", self.conf],
                                     stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("nsd exited: " + self.log())
            if self.soa_serial(self.anchor) == self.serial:
                return self.port
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("nsd does not answer: " + self.log())

    def reload(self, timeout=10):
        """Signed again with a new serial; nsd re-reads what changed."""
        self.build()
        later = time.time() + 2     # newer than what nsd has seen
        for z in self.zones.values():
            p = os.path.join(self.dir, z.name + ".zone" +
                             (".signed" if z.signed else ""))
            os.utime(p, (later, later))
        os.kill(self.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.soa_serial(z) == self.serial for z in self.zones):
                return
            time.sleep(0.05)
        raise RuntimeError("nsd did not reload: " + self.log())

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def soa_serial(self, zone):
        """The serial nsd serves for zone, by one UDP query (or None)."""
        q = (b"\x12\x34\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00" +
             b"".join(bytes([len(l)]) + l.encode()
                      for l in zone.split(".")) + b"\x00\x00\x06\x00\x01")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            try:
                s.sendto(q, ("127.0.0.1", self.port))
                r = s.recv(4096)
            except OSError:
                return None
        if r[:2] != b"\x12\x34" or r[3] & 0x0f or r[6:8] == b"\0\0":
            return None
        off = self._skip(r, 12) + 4                 # the question
        off = self._skip(r, off) + 10               # the answer's header
        off = self._skip(r, self._skip(r, off))     # mname, rname
        return int.from_bytes(r[off:off + 4], "big")

    @staticmethod
    def _skip(msg, off):
        while True:
            n = msg[off]
            if n & 0xc0 == 0xc0:
                return off + 2
            off += n + 1
            if n == 0:
                return off

    def log(self):
        text = ""
        for name in ("nsd.log", "nsd.stderr"):
            p = os.path.join(self.dir, name)
            if os.path.exists(p):
                with open(p) as f:
                    text += f.read()
        return text
