"""LDAP directory tables against a real slapd started by each test.

The slapd is Debian's, on 127.0.0.1 high ports, with its own slapd.conf,
an mdb database in the test's directory, the core, cosine and
inetorgperson schemas and a small schema of our own for Exchange's
targetAddress and proxyAddresses.  It is stopped by PID.
"""
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import Sink, free_port, port_open, wait_for

SLAPD = shutil.which("slapd") or "/usr/sbin/slapd"
SLAPADD = shutil.which("slapadd") or "/usr/sbin/slapadd"

pytestmark = pytest.mark.skipif(not os.path.exists(SLAPD),
                                reason="slapd is not installed")

SCHEMA = """\
attributetype ( 1.3.6.1.4.1.55555.1.1 NAME 'targetAddress'
\tEQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
\tSYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.55555.1.2 NAME 'proxyAddresses'
\tEQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
\tSYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
objectclass ( 1.3.6.1.4.1.55555.2.1 NAME 'splitmxRecipient' SUP top
\tAUXILIARY MAY ( targetAddress $ proxyAddresses ) )
"""

BASE = "dc=example,dc=com"

DATA = """\
dn: dc=example,dc=com
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,dc=example,dc=com
objectClass: organizationalUnit
ou: people

dn: ou=contacts,dc=example,dc=com
objectClass: organizationalUnit
ou: contacts

dn: ou=restricted,dc=example,dc=com
objectClass: organizationalUnit
ou: restricted

dn: cn=splitmx,dc=example,dc=com
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: splitmx
userPassword: s3cret

dn: uid=alice,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: splitmxRecipient
uid: alice
cn: Alice
sn: Example
mail: alice@example.com
proxyAddresses: SMTP:alice@example.com
proxyAddresses: smtp:alice.smith@example.com

dn: uid=star,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: star
cn: Star
sn: Example
mail: x*y@example.com

dn: cn=bob,ou=contacts,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: splitmxRecipient
cn: bob
sn: Notes
mail: bob@example.com
targetAddress: SMTP:bob@notes.example.com

dn: cn=dave,ou=contacts,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: splitmxRecipient
cn: dave
sn: Notes
proxyAddresses: SMTP:dave@example.com
targetAddress: smtp:Dave.Jones@Notes.Example.com

dn: uid=shared1,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: shared1
cn: Shared One
sn: Example
mail: shared@example.com

dn: uid=shared2,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: shared2
cn: Shared Two
sn: Example
mail: shared@example.com

dn: uid=carol,ou=restricted,dc=example,dc=com
objectClass: inetOrgPerson
uid: carol
cn: Carol
sn: Example
mail: carol@example.com
"""

# Anonymous may read all but ou=restricted, which only the bind DN sees.
ACL = """\
access to attrs=userPassword
\tby anonymous auth
\tby * none
access to dn.subtree="ou=restricted,dc=example,dc=com"
\tby dn.exact="cn=splitmx,dc=example,dc=com" read
\tby * none
access to *
\tby * read
"""


def make_pki(d):
    """A CA and a server certificate for 127.0.0.1 that it signed."""
    def run(*args):
        subprocess.run(args, check=True, capture_output=True)
    ca_key, ca_crt = os.path.join(d, "ca.key"), os.path.join(d, "ca.crt")
    key, csr = os.path.join(d, "srv.key"), os.path.join(d, "srv.csr")
    crt, ext = os.path.join(d, "srv.crt"), os.path.join(d, "ext")
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
        "-keyout", ca_key, "-out", ca_crt, "-days", "2",
        "-subj", "/CN=splitmx test CA")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
        "-out", csr, "-subj", "/CN=127.0.0.1")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey",
        ca_key, "-CAcreateserial", "-out", crt, "-days", "2",
        "-extfile", ext)
    for p in (ca_crt, crt, key):
        os.chmod(p, 0o644)
    return ca_crt, crt, key


class Slapd:
    """One slapd with its own configuration and database."""

    def __init__(self, pki):
        self.dir = tempfile.mkdtemp(prefix="slapd", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.tls_port = free_port()
        self.url = "ldap://127.0.0.1:%d" % self.port
        self.tls_url = "ldaps://127.0.0.1:%d" % self.tls_port
        self.proc = None
        self.ca, crt, key = pki
        db = os.path.join(self.dir, "db")
        os.mkdir(db)
        with open(os.path.join(self.dir, "test.schema"), "w") as f:
            f.write(SCHEMA)
        self.conf = os.path.join(self.dir, "slapd.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join([
                "include /etc/ldap/schema/core.schema",
                "include /etc/ldap/schema/cosine.schema",
                "include /etc/ldap/schema/inetorgperson.schema",
                "include %s/test.schema" % self.dir,
                "pidfile %s/slapd.pid" % self.dir,
                "TLSCACertificateFile %s" % self.ca,
                "TLSCertificateFile %s" % crt,
                "TLSCertificateKeyFile %s" % key,
                "modulepath /usr/lib/ldap",
                "moduleload back_mdb",
                "database mdb",
                'suffix "%s"' % BASE,
                'rootdn "cn=admin,%s"' % BASE,
                "rootpw admin",
                "directory %s" % db,
                "maxsize 10485760",
                "index objectClass,mail,proxyAddresses eq",
                ACL]) + "\n")
        ldif = os.path.join(self.dir, "data.ldif")
        with open(ldif, "w") as f:
            f.write(DATA)
        subprocess.run([SLAPADD, "-f", self.conf, "-l", ldif], check=True,
                       capture_output=True)

    def start(self):
        self.log = open(os.path.join(self.dir, "slapd.log"), "ab")
        self.proc = subprocess.Popen(
            [SLAPD, "-f", self.conf, "-h",
             "%s/ %s/" % (self.url, self.tls_url), "-d", "0"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        wait_for(lambda: self.proc.poll() is not None or
                 (port_open(self.port) and port_open(self.tls_port)),
                 15, what="slapd")
        assert self.proc.poll() is None, "slapd exited"
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.log.close()
        self.proc = None

    def pause(self):
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.resume()
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def ldap_pki(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("ldappki"))
    os.chmod(d, 0o755)
    return make_pki(d)


@pytest.fixture
def slapd(ldap_pki):
    s = Slapd(ldap_pki).start()
    yield s
    s.cleanup()


@pytest.fixture
def sinks():
    local, fwd = Sink(), Sink()
    yield local, fwd
    local.stop()
    fwd.stop()


def conf(url, extra="", local_port=9, fwd_port=9):
    text = """
table corp ldap {
\turl "%s"
\tbase "%s"
%s
}
domain "example.com" {
\ttype shared
\tdirectory corp
\tlocal to "[127.0.0.1]:%d"
\tforward to "[127.0.0.1]:%d"
}
""" % (url, BASE, extra, local_port, fwd_port)
    # Splitmx.config() fills in {port} and the like: braces are literal.
    return text.replace("{", "{{").replace("}", "}}")


def lookup(d, addr):
    r = d.ctl("lookup", addr, json_out=True)
    import json
    out = json.loads(r.stdout)
    out["rc"] = r.returncode
    return out


def rcpt(d, *addrs):
    """The RCPT replies, in one session."""
    with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as s:
        s.ehlo("client.test")
        s.mail("sender@client.test")
        return [s.rcpt(a) for a in addrs]


# --- the seed routing tests, with the directory in LDAP -----------------

def test_local_mailbox_is_local(smx, slapd):
    d = smx.start(conf(slapd.url))
    r = lookup(d, "alice@example.com")
    assert r["route"] == "local" and r["code"] == 250
    assert r["steps"][0]["source"] == (
        "%s dn=uid=alice,ou=people,dc=example,dc=com" % slapd.url)
    assert rcpt(d, "alice@example.com")[0][0] == 250


def test_custom_recipient_is_rewritten_without_smtp_prefix(smx, slapd):
    d = smx.start(conf(slapd.url))
    r = lookup(d, "bob@example.com")
    assert r["route"] == "custom"
    assert r["rewritten"] == "bob@notes.example.com"
    assert r["steps"][0]["target"] == "bob@notes.example.com"


def test_proxy_address_finds_contact_lower_smtp_prefix(smx, slapd):
    d = smx.start(conf(slapd.url))
    r = lookup(d, "dave@example.com")
    assert r["route"] == "custom"
    assert r["rewritten"] == "dave.jones@notes.example.com"
    r = lookup(d, "alice.smith@example.com")
    assert r["route"] == "local"
    assert "uid=alice," in r["steps"][0]["source"]


def test_unknown_recipient_is_550(smx, slapd):
    d = smx.start(conf(slapd.url))
    r = lookup(d, "nobody@example.com")
    assert r["rc"] == 1 and r["code"] == 550
    code, text = rcpt(d, "nobody@example.com")[0]
    assert code == 550 and b"5.1.1" in text


def test_detail_and_case(smx, slapd):
    d = smx.start(conf(slapd.url))
    assert lookup(d, "alice+lists@example.com")["route"] == "local"
    assert lookup(d, "ALICE@Example.COM")["route"] == "local"
    r = lookup(d, "Bob+x@EXAMPLE.com")
    assert r["route"] == "custom"
    assert r["rewritten"] == "bob@notes.example.com"
    codes = [c for c, _ in rcpt(d, "Alice+x@EXAMPLE.COM",
                                "bob+y@example.com", "nobody+z@example.com")]
    assert codes == [250, 250, 550]


def test_messages_arrive_rewritten(smx, slapd, sinks):
    local, fwd = sinks
    d = smx.start(conf(slapd.url, local_port=local.port,
                       fwd_port=fwd.port))
    with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as s:
        s.sendmail("sender@client.test",
                   ["alice@example.com", "bob@example.com"],
                   b"Subject: t\r\n\r\nhello\r\n")
    assert local.wait(1)[0]["rcpts"] == ["alice@example.com"]
    assert fwd.wait(1)[0]["rcpts"] == ["bob@notes.example.com"]


def test_many_lookups_at_once_share_one_connection(smx, slapd):
    d = smx.start(conf(slapd.url))
    addrs = ["alice@example.com", "bob@example.com",
             "nobody@example.com"] * 10
    results = [None] * len(addrs)

    def one(i):
        results[i] = lookup(d, addrs[i])["route"]
    threads = [threading.Thread(target=one, args=(i,))
               for i in range(len(addrs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["local", "custom", "none"] * 10
    assert d.log().count("connected to %s" % slapd.url) == 1


# --- filter injection ------------------------------------------------------

@pytest.mark.parametrize("addr", [
    "*@example.com",
    "a*@example.com",
    "a)(mail=*)(x@example.com",
    "x)(|(mail=*@example.com",
    "alice\\@example.com",
    "\\2a@example.com",
    "*)(objectClass=*@example.com",
])
def test_filter_injection_finds_nothing(smx, slapd, addr):
    d = smx.start(conf(slapd.url))
    r = lookup(d, addr)
    assert r["code"] == 550, r
    assert "ambiguous" not in d.log()
    # And nothing broke: the next lookups are answered as usual.
    assert lookup(d, "alice@example.com")["route"] == "local"


def test_escaped_star_still_matches_itself(smx, slapd):
    d = smx.start(conf(slapd.url))
    r = lookup(d, "x*y@example.com")
    assert r["route"] == "local"
    assert "uid=star," in r["steps"][0]["source"]


def test_injection_over_smtp_is_refused(smx, slapd):
    d = smx.start(conf(slapd.url))
    code, _ = rcpt(d, "*@example.com")[0]
    assert code == 550


# --- ambiguity ---------------------------------------------------------------

def test_ambiguous_entry_is_451_430(smx, slapd):
    d = smx.start(conf(slapd.url))
    r = lookup(d, "shared@example.com")
    assert r["code"] == 451 and r["reply"].startswith("4.3.0"), r
    code, text = rcpt(d, "shared@example.com")[0]
    assert code == 451 and b"4.3.0" in text
    d.wait_log(r"shared@example.com: ambiguous.*uid=shared")


# --- outages, failover, cache --------------------------------------------

def test_outage_is_451_then_recovers_by_itself(smx, slapd):
    d = smx.start(conf(slapd.url, "\ttimeout 2s"))
    assert lookup(d, "alice@example.com")["route"] == "local"
    slapd.stop()
    codes = []
    for a in ("alice@example.com", "bob@example.com", "nobody@example.com"):
        r = lookup(d, a)
        codes.append(r["code"])
        assert r["reply"].startswith("4.4.3"), r
    assert codes == [451, 451, 451]
    code, text = rcpt(d, "bob@example.com")[0]
    assert code == 451 and b"4.4.3" in text
    assert d.log().count("directory unavailable, recipients") == 1
    slapd.start()
    wait_for(lambda: lookup(d, "bob@example.com")["route"] == "custom",
             30, interval=0.5, what="recovery")
    d.wait_log("directory available again")
    assert d.log().count("directory unavailable, recipients") == 1
    assert rcpt(d, "alice@example.com")[0][0] == 250


def test_hung_server_times_out_with_451(smx, slapd):
    d = smx.start(conf(slapd.url, "\ttimeout 2s"))
    assert lookup(d, "alice@example.com")["route"] == "local"
    slapd.pause()
    try:
        t0 = time.monotonic()
        r = lookup(d, "bob@example.com")
        assert r["code"] == 451
        assert time.monotonic() - t0 < 10
    finally:
        slapd.resume()
    wait_for(lambda: lookup(d, "bob@example.com")["route"] == "custom",
             30, interval=0.5, what="recovery")


def test_failover_to_second_url(smx, slapd):
    dead = free_port()
    d = smx.start(conf("ldap://127.0.0.1:%d %s" % (dead, slapd.url)))
    r = lookup(d, "alice@example.com")
    assert r["route"] == "local"
    assert r["steps"][0]["source"].startswith(slapd.url + " dn=")
    d.wait_log(r"using %s" % slapd.url)



class Forwarder:
    """A TCP relay from a port of its own to slapd: a second server for
    the url list that can come and go."""

    def __init__(self, port, to_port):
        self.to_port = to_port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.conns = []
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                a, _ = self.sock.accept()
            except OSError:
                return
            b = socket.create_connection(("127.0.0.1", self.to_port))
            self.conns += [a, b]
            for x, y in ((a, b), (b, a)):
                threading.Thread(target=self.pipe, args=(x, y),
                                 daemon=True).start()

    @staticmethod
    def pipe(x, y):
        try:
            while True:
                data = x.recv(65536)
                if not data:
                    break
                y.sendall(data)
        except OSError:
            pass
        for s in (x, y):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self):
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def test_failback_to_the_first_url(smx, slapd):
    """On the second server since the first failed; once the first
    answers again, the next fail-back round goes back to it (extension:
    failback)."""
    first = free_port()
    first_url = "ldap://127.0.0.1:%d" % first
    d = smx.start(conf("%s %s" % (first_url, slapd.url), "\tfailback 1s"))
    r = lookup(d, "alice@example.com")
    assert r["steps"][0]["source"].startswith(slapd.url + " dn=")
    # The first is still down at the next round: we stay, and say so.
    d.wait_log(r"table corp: staying on %s" % slapd.url)
    assert lookup(d, "bob@example.com")["route"] == "custom"
    fwd = Forwarder(first, slapd.port)
    try:
        d.wait_log(r"table corp: back on %s" % first_url)
        r = lookup(d, "alice@example.com")
        assert r["route"] == "local"
        assert r["steps"][0]["source"].startswith(first_url + " dn="), r
    finally:
        fwd.stop()

def test_cache_serves_during_outage(smx, slapd):
    d = smx.start(conf(slapd.url, "\tcache 5m\n\ttimeout 2s"))
    assert lookup(d, "alice@example.com")["route"] == "local"
    assert lookup(d, "bob@example.com")["route"] == "custom"
    assert lookup(d, "nobody@example.com")["code"] == 550
    r = lookup(d, "alice@example.com")
    assert r["steps"][0]["source"].endswith("(cache)")
    slapd.stop()
    r = lookup(d, "bob@example.com")
    assert r["route"] == "custom" and "(cache" in r["steps"][0]["source"]
    codes = [c for c, _ in rcpt(d, "alice@example.com", "bob@example.com",
                                "nobody@example.com", "new@example.com")]
    # Known answers from the cache; a name never asked: 451, never 550.
    assert codes == [250, 250, 550, 451]


def test_no_cache_without_cache_setting(smx, slapd):
    d = smx.start(conf(slapd.url, "\ttimeout 2s"))
    assert lookup(d, "alice@example.com")["route"] == "local"
    r = lookup(d, "alice@example.com")
    assert "(cache" not in r["steps"][0]["source"]
    slapd.stop()
    assert lookup(d, "alice@example.com")["code"] == 451


# --- bind ------------------------------------------------------------------

def test_bind_with_password_sees_restricted_entries(smx, slapd):
    d = smx.start(conf(slapd.url, '\tbind "cn=splitmx,%s" password '
                       '"s3cret"' % BASE))
    r = lookup(d, "carol@example.com")
    assert r["route"] == "local", r
    assert "uid=carol,ou=restricted" in r["steps"][0]["source"]


def test_anonymous_does_not_see_restricted_entries(smx, slapd):
    d = smx.start(conf(slapd.url))
    assert lookup(d, "carol@example.com")["code"] == 550


def test_wrong_password_is_451_and_logged(smx, slapd):
    d = smx.start(conf(slapd.url, '\tbind "cn=splitmx,%s" password '
                       '"wrong"\n\ttimeout 2s' % BASE))
    r = lookup(d, "carol@example.com")
    assert r["code"] == 451
    code, _ = rcpt(d, "alice@example.com")[0]
    assert code == 451
    d.wait_log(r'bind as "cn=splitmx,dc=example,dc=com" failed: '
               r'Invalid credentials')
    assert "s3cret" not in d.log() and "wrong" not in d.log()


# --- TLS ---------------------------------------------------------------------

def test_ldaps_with_ca(smx, slapd):
    d = smx.start(conf(slapd.tls_url, '\tca "%s"' % slapd.ca))
    r = lookup(d, "bob@example.com")
    assert r["route"] == "custom", r
    assert r["steps"][0]["source"].startswith(slapd.tls_url)


def test_starttls_with_ca(smx, slapd):
    d = smx.start(conf(slapd.url, '\ttls require\n\tca "%s"' % slapd.ca))
    assert lookup(d, "alice@example.com")["route"] == "local"


def test_unverified_server_is_refused(smx, slapd):
    # The system's CA store does not know our test CA.
    d = smx.start(conf(slapd.tls_url, "\ttimeout 2s"))
    assert lookup(d, "alice@example.com")["code"] == 451
    d.wait_log(r"ldaps://127.0.0.1:%d: TLS" % slapd.tls_port)
    d2 = smx.start(conf(slapd.url, "\ttls require\n\ttimeout 2s"),
                   workdir=tempfile.mkdtemp(prefix="smx", dir="/tmp"))
    assert lookup(d2, "alice@example.com")["code"] == 451


def test_missing_ca_file_is_a_configuration_error(smx, slapd):
    text, _ = smx.config(conf(slapd.tls_url, '\tca "/nonexistent/ca.pem"'))
    path = os.path.join(smx.tmp, "bad.conf")
    with open(path, "w") as f:
        f.write(text)
    from conftest import SPLITMXD
    r = subprocess.run([SPLITMXD, "-n", "-f", path], capture_output=True,
                       text=True)
    assert r.returncode == 1
    assert "ca" in r.stderr and "/nonexistent/ca.pem" in r.stderr


# --- reload -------------------------------------------------------------------

def test_reload_keeps_the_connection_and_cache(smx, slapd):
    body = conf(slapd.url, "\tcache 5m")
    d = smx.start(body)
    assert lookup(d, "alice@example.com")["route"] == "local"
    with open(d.conf_path, "a") as f:
        f.write("\nlimit recipients 50\n")
    r = d.ctl("reload")
    assert r.returncode == 0, r.stdout + r.stderr
    r = lookup(d, "alice@example.com")
    assert r["route"] == "local"
    assert r["steps"][0]["source"].endswith("(cache)")
    assert lookup(d, "bob@example.com")["route"] == "custom"
    assert d.log().count("connected to %s" % slapd.url) == 1


def test_reload_to_another_server(smx, slapd, ldap_pki):
    d = smx.start(conf(slapd.url))
    assert lookup(d, "alice@example.com")["route"] == "local"
    other = Slapd(ldap_pki).start()
    try:
        with open(d.conf_path) as f:
            text = f.read()
        with open(d.conf_path, "w") as f:
            f.write(text.replace(slapd.url, other.url))
        r = d.ctl("reload")
        assert r.returncode == 0, r.stdout + r.stderr
        r = lookup(d, "alice@example.com")
        assert r["steps"][0]["source"].startswith(other.url)
    finally:
        other.cleanup()


def test_every_ldap_path_runs_under_the_seccomp_filter(smx, slapd):
    """Issue 18: the lookup process' system call list holds on the LDAP
    paths: ldaps with a CA and a bind, the cache, an outage and the
    reconnection, a reload to StartTLS, lookups over SMTP and splitmxctl.
    A call outside the list would end the process (and the daemon)."""
    from conftest import OBJ
    from test_privsep import child_by_name, proc_status
    if "asan" in OBJ:
        pytest.skip("sanitizer builds load no filter")
    extra = ('\tca "%s"\n\tbind "cn=splitmx,%s" password "s3cret"\n'
             '\tcache 1m\n\ttimeout 2s' % (slapd.ca, BASE))
    d = smx.start(conf(slapd.tls_url, extra))
    kids = child_by_name(d)
    for name, pid in kids.items():
        assert proc_status(pid)["Seccomp"].strip() == "2", name
    assert lookup(d, "carol@example.com")["route"] == "local"
    assert rcpt(d, "bob@example.com")[0][0] == 250
    slapd.stop()
    assert lookup(d, "carol@example.com")["steps"][0]["source"].endswith(
        "(cache)")
    assert rcpt(d, "alice@example.com")[0][0] == 451
    slapd.start()
    wait_for(lambda: lookup(d, "alice@example.com")["route"] == "local",
             30, interval=0.5, what="recovery")
    with open(d.conf_path) as f:
        text = f.read()
    with open(d.conf_path, "w") as f:
        f.write(text.replace(slapd.tls_url, slapd.url).replace(
            '\tca "', '\ttls require\n\tca "'))
    r = d.ctl("reload")
    assert r.returncode == 0, r.stdout + r.stderr
    r = lookup(d, "dave@example.com")
    assert r["rc"] in (0, 1) and r["steps"][0]["source"].startswith(
        slapd.url), r
    assert rcpt(d, "bob@example.com")[0][0] == 250
    assert child_by_name(d) == kids
    assert "forbidden system call" not in d.log()
