"""A test certificate authority (openssl command line) and a loopback
HTTPS server that serves an MTA-STS policy, for the DANE and MTA-STS
tests.  Nothing here talks outside 127.0.0.0/8.

    ca = TestCA(tmpdir)                             # ca.pem, ca.key
    cert, key, chain = ca.issue("mx.dane.example")  # signed by the root
    inter = ca.issue("Test Intermediate", ca=True)
    cert, key, chain = ca.issue("mx.x.example", issuer=inter)
    cert, key, _ = ca.issue("mx.x.example", selfsigned=True)

    srv = StsServer(tmpdir, ca, ["mta-sts.sts.example"],
                    addr=random_loopback(), port=443)
    srv.set_policy("enforce", ["mx.sts.example"], 86400)
    srv.start()
    srv.fetches                 # GETs of /.well-known/mta-sts.txt
"""
import http.server
import os
import random
import ssl
import subprocess
import threading


def _openssl(cwd, *args):
    r = subprocess.run(("openssl",) + args, cwd=cwd, capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise RuntimeError("openssl %s: %s" % (" ".join(args), r.stderr))


class TestCA:
    """A root CA on P-256; issue() makes server certificates and
    intermediate CAs under it."""
    __test__ = False

    def __init__(self, workdir, name="splitmx Test Root CA"):
        self.dir = os.path.abspath(str(workdir))
        os.makedirs(self.dir, exist_ok=True)
        self.cert = os.path.join(self.dir, "ca.pem")
        self.key = os.path.join(self.dir, "ca.key")
        self.serial = random.randint(1000, 10 ** 9)
        if not os.path.exists(self.cert):
            _openssl(self.dir, "req", "-x509", "-newkey", "ec",
                     "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                     "-keyout", self.key, "-out", self.cert,
                     "-days", "30", "-subj", "/CN=" + name,
                     "-addext", "basicConstraints=critical,CA:TRUE",
                     "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        os.chmod(self.cert, 0o644)

    def issue(self, name, sans=None, ca=False, issuer=None,
              selfsigned=False, days=30):
        """(cert, key, chain) for name (CN and, unless sans says
        otherwise, the DNS name).  chain is the certificate and its
        intermediates, not the root."""
        base = os.path.join(self.dir, "".join(
            c if c.isalnum() or c in ".-" else "_" for c in name))
        key, csr, cert = base + ".key", base + ".csr", base + ".pem"
        ext = base + ".ext"
        if sans is None:
            sans = [] if ca else [name]
        if ca:
            lines = ["basicConstraints=critical,CA:TRUE",
                     "keyUsage=critical,keyCertSign,cRLSign"]
        else:
            lines = ["basicConstraints=critical,CA:FALSE",
                     "keyUsage=critical,digitalSignature,keyEncipherment",
                     "extendedKeyUsage=serverAuth"]
        if sans:
            lines.append("subjectAltName=" +
                         ",".join("DNS:" + s for s in sans))
        with open(ext, "w") as f:
            f.write("\n".join(lines) + "\n")
        _openssl(self.dir, "genpkey", "-algorithm", "EC", "-pkeyopt",
                 "ec_paramgen_curve:P-256", "-out", key)
        if selfsigned:
            args = ["req", "-x509", "-new", "-key", key, "-out", cert,
                    "-days", str(days), "-subj", "/CN=" + name]
            for l in lines:
                args += ["-addext", l]
            _openssl(self.dir, *args)
            return cert, key, cert
        _openssl(self.dir, "req", "-new", "-key", key, "-out", csr,
                 "-subj", "/CN=" + name)
        icert, ikey = issuer[:2] if issuer else (self.cert, self.key)
        self.serial += 1
        _openssl(self.dir, "x509", "-req", "-in", csr, "-CA", icert,
                 "-CAkey", ikey, "-set_serial", str(self.serial),
                 "-days", str(days), "-sha256", "-extfile", ext,
                 "-out", cert)
        chain = base + ".chain.pem"
        with open(cert) as f:
            text = f.read()
        if issuer:
            with open(issuer[2]) as f:
                text += f.read()
        with open(chain, "w") as f:
            f.write(text)
        return cert, key, chain


def server_context(cert, key, chain=None):
    """A TLS server context (for an SMTP sink's STARTTLS)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(chain or cert, key)
    return ctx


def random_loopback():
    """A random 127.x.y.z: Linux answers all of 127/8 on lo, so a test
    may have port 443 (as root) on an address of its own."""
    return "127.%d.%d.%d" % (random.randint(100, 250),
                             random.randint(0, 255), random.randint(1, 254))


class _PolicyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        srv = self.server.owner
        with srv.lock:
            srv.requests.append((self.headers.get("Host", ""), self.path))
            if self.path == "/.well-known/mta-sts.txt":
                srv.fetches += 1
            policy, status, ctype = srv.policy, srv.status, srv.content_type
            redirect = srv.redirect_to
        if redirect:
            self.send_response(302)
            self.send_header("Location", redirect)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path != "/.well-known/mta-sts.txt" or policy is None:
            body = b"not found\n"
            self.send_response(404)
        else:
            body = policy.encode() if isinstance(policy, str) else policy
            self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class StsServer:
    """HTTPS serving .policy at /.well-known/mta-sts.txt, with a
    certificate of the test CA for each name (chosen by SNI).  status,
    content_type, redirect_to and policy = None (404) test refusals."""

    def __init__(self, workdir, ca, names, addr="127.0.0.1", port=0):
        self.addr, self.port = addr, port
        self.names = list(names)
        self.certs = {n: ca.issue(n) for n in self.names}
        self.policy = None
        self.status = 200
        self.content_type = "text/plain"
        self.redirect_to = None
        self.fetches = 0
        self.requests = []
        self.lock = threading.Lock()
        self.httpd = None

    def set_policy(self, mode, mx, max_age=86400):
        text = "version: STSv1\r\nmode: %s\r\n" % mode
        text += "".join("mx: %s\r\n" % m for m in mx)
        text += "max_age: %d\r\n" % max_age
        with self.lock:
            self.policy = text

    def start(self):
        ctxs = {}
        for n, (cert, key, chain) in self.certs.items():
            ctxs[n] = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctxs[n].minimum_version = ssl.TLSVersion.TLSv1_2
            ctxs[n].load_cert_chain(chain, key)
        first = ctxs[self.names[0]]

        def sni(sock, name, _ctx):
            if name in ctxs:
                sock.context = ctxs[name]
        first.sni_callback = sni
        httpd = http.server.ThreadingHTTPServer((self.addr, self.port),
                                                _PolicyHandler)
        httpd.daemon_threads = True
        httpd.owner = self
        httpd.socket = first.wrap_socket(httpd.socket, server_side=True)
        self.httpd = httpd
        self.port = httpd.server_address[1]
        self.thread = threading.Thread(target=httpd.serve_forever,
                                       kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()

    def stop(self):
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(5)
            self.httpd = None
