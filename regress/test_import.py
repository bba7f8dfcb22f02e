"""splitmxctl import (SPEC §12, issue 15): the other system's export made
custom recipients of a file table, the file replaced atomically, reloaded.

The exports are real: `ldapsearch -LLL` against a slapd holding AD-like
contacts (proxyAddresses, targetAddress; test_ldap's schema), and CSV
files.  After an import, mail goes through a real splitmxd to the sinks
that stand for the local and the other ("notes") system; the forward
host is an MX name in the test's own DNS, so the other system's routing
domain comes from the configuration.
"""
import base64
import json
import os
import pwd
import shutil
import signal
import smtplib
import socket
import subprocess
import time

import pytest

from conftest import SPLITMXCTL, Sink
from test_ldap import BASE, SLAPD, Slapd, make_pki

pytestmark = pytest.mark.skipif(not os.path.exists(SLAPD),
                                reason="slapd is not installed")

NOTES = "ou=notes," + BASE

HAND = """\
# people on this system, written by hand
alice@example.com       local
postmaster@example.com  local
hand@example.com        custom  hand@partner.example
"""

ZOE_CN = "Zo\u00eb \u00dcnicode-Westerhuizen van den Berg-Oppenheimer"

# Contacts of the other system as directory synchronisation leaves them.
CONTACTS = """\
dn: %(notes)s
objectClass: organizationalUnit
ou: notes

dn: cn=bob,%(notes)s
objectClass: inetOrgPerson
objectClass: splitmxRecipient
cn: bob
sn: Notes
mail: bob@example.com
proxyAddresses: SMTP:bob@example.com
proxyAddresses: smtp:robert@example.com
proxyAddresses: smtp:bob@notes.example.com
proxyAddresses: X500:/o=Example/ou=Notes/cn=Recipients/cn=bob
targetAddress: SMTP:bob@notes.example.com

dn: cn=lou,%(notes)s
objectClass: inetOrgPerson
objectClass: splitmxRecipient
cn: lou
sn: Notes
mail: lou@example.com
proxyAddresses: SMTP:lou@example.com
proxyAddresses: smtp:lou.reed@notes.example.com
targetAddress: SMTP:lou@example.com

dn: cn=lost,%(notes)s
objectClass: inetOrgPerson
objectClass: splitmxRecipient
cn: lost
sn: Notes
mail: lost@example.com
targetAddress: SMTP:lost@example.com

dn: cn=alice,%(notes)s
objectClass: inetOrgPerson
objectClass: splitmxRecipient
cn: alice
sn: Notes
mail: alice@example.com
targetAddress: SMTP:alice@notes.example.com

dn: cn=carol,%(notes)s
objectClass: inetOrgPerson
objectClass: splitmxRecipient
cn: carol
sn: Notes
mail: carol@example.com
proxyAddresses: SMTP:carol@example.com
targetAddress: SMTP:carol@notes.example.com

dn: cn=dan,%(notes)s
objectClass: inetOrgPerson
objectClass: splitmxRecipient
cn: dan
sn: Notes
mail: dan@example.com
targetAddress: smtp:dan@notes.example.com

dn:: %(zoe_dn)s
objectClass: inetOrgPerson
objectClass: splitmxRecipient
cn:: %(zoe_cn)s
sn: Notes
mail: zoe@example.com
proxyAddresses: smtp:zoe@notes.example.com
targetAddress: SMTP:zoe@notes.example.com
""" % {
    "notes": NOTES,
    "zoe_dn": base64.b64encode(("cn=%s,%s" % (ZOE_CN, NOTES))
                               .encode()).decode(),
    "zoe_cn": base64.b64encode(ZOE_CN.encode()).decode(),
}

BODY = """
resolver "%(dns)s"
table people file "%(path)s"
domain "example.com" {{
	type shared
	directory people
	local to "[127.0.0.1]:%(local)d" tls none
	forward to "%(forward)s" tls none
}}
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("importpki"))
    os.chmod(d, 0o755)
    return make_pki(d)


@pytest.fixture
def slapd(pki):
    s = Slapd(pki).start()
    ldap(s, "ldapadd", CONTACTS)
    yield s
    s.cleanup()


def ldap(slapd, tool, ldif):
    r = subprocess.run([tool, "-x", "-H", slapd.url, "-D", "cn=admin," + BASE,
                        "-w", "admin"], input=ldif.encode(),
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr.decode()


class World:
    """A splitmxd for example.com with the directory HAND, the two
    sinks, and the other system's MX in the test DNS."""

    def __init__(self, smx, dns, forward=None, tables=None, conf=""):
        self.local, self.notes = Sink(), Sink()
        dns.add("notes.example.com. MX 10 mx.notes.example.com.",
                "mx.notes.example.com. A 127.0.0.1")
        self.dir = tables or smx.tmp
        self.path = os.path.join(self.dir, "directory")
        with open(self.path, "w") as f:
            f.write(HAND)
        self.d = smx.start(conf + BODY % {
            "dns": dns.addr, "local": self.local.port, "path": self.path,
            "forward": forward or "notes.example.com:%d" % self.notes.port})

    def run(self, *args, stdin=None, user=None):
        kw = {}
        if user is not None:
            pw = pwd.getpwnam(user)
            kw.update(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])
        return subprocess.run([SPLITMXCTL, "-s", self.d.control] +
                              list(args), capture_output=True, text=True,
                              timeout=60, input=stdin, **kw)

    def export(self, slapd, name="export.ldif"):
        """What an administrator's cron job runs against the directory."""
        path = os.path.join(self.dir, name)
        r = subprocess.run(["ldapsearch", "-LLL", "-x", "-H", slapd.url,
                            "-b", NOTES, "(objectClass=splitmxRecipient)",
                            "mail", "proxyAddresses", "targetAddress"],
                           capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr
        with open(path, "wb") as f:
            f.write(r.stdout)
        return path

    def write(self, name, data):
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        return path

    def text(self, suffix=""):
        with open(self.path + suffix, "rb") as f:
            return f.read().decode()

    def lookup(self, addr):
        return json.loads(self.d.ctl("lookup", addr, json_out=True).stdout)

    def send(self, *rcpts):
        """One message; the recipients refused at RCPT."""
        with smtplib.SMTP("127.0.0.1", self.d.port, timeout=30) as s:
            refused = s.sendmail("sender@client.example", list(rcpts),
                                 b"Subject: import\r\n\r\nhello\r\n")
        return set(refused)

    def stop(self):
        self.d.stop()
        self.local.stop()
        self.notes.stop()


@pytest.fixture
def world(smx, dns):
    w = World(smx, dns)
    yield w
    w.stop()


def line_of(path, needle):
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            if needle.encode() in line:
                return n
    raise AssertionError("%s not in %s" % (needle, path))


def rcpts(sink, n):
    return sorted(r for m in sink.wait(n) for r in m["rcpts"])


def imported(text):
    return sorted(l.split()[0] for l in text.splitlines()
                  if l.endswith("# import"))


# --- an ldapsearch export, end to end ---------------------------------------

def test_ldapsearch_export_routes_imported_users_to_the_other_system(
        world, slapd):
    exp = world.export(slapd)
    raw = open(exp, "rb").read()
    # ldapsearch folds the long DN and base64-encodes the UTF-8 one.
    assert b"\ndn:: " in raw and b"\n " in raw
    before = os.stat(world.path)

    r = world.run("import", "-n", "people", exp)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.splitlines()[0].startswith(
        "table people (%s) from %s: 6 added, 0 removed, 0 changed, "
        "1 conflict" % (world.path, exp))
    assert ("added     bob@example.com custom bob@notes.example.com (%s:%d)"
            % (exp, line_of(exp, "mail: bob@example.com"))) in out
    # The looping proxy address is replaced by the one in notes.
    assert "added     lou@example.com custom lou.reed@notes.example.com" in out
    assert "added     robert@example.com custom bob@notes.example.com" in out
    assert "added     zoe@example.com custom zoe@notes.example.com" in out
    assert ("conflict  alice@example.com stays local (directory:2); %s:%d "
            "has custom alice@notes.example.com"
            % (exp, line_of(exp, "mail: alice@example.com"))) in out
    assert out.rstrip().endswith("-n: nothing written")
    # No way out to notes for lost: left out, with the export's line.
    assert ("%s:%d: warning: lost@example.com: target lost@example.com is "
            "in the shared domain example.com and the entry has no address "
            "in notes.example.com: left out"
            % (exp, line_of(exp, "dn: cn=lost"))) in r.stderr
    assert world.text() == HAND
    assert os.stat(world.path).st_mtime_ns == before.st_mtime_ns
    assert not os.path.exists(world.path + ".prev")

    r = world.run("import", "people", exp)
    assert r.returncode == 0, r.stderr
    assert "directory people: 9 entries from %s" % world.path in r.stdout
    text = world.text()
    assert text.startswith(HAND), "hand-written lines moved or changed"
    assert imported(text) == sorted([
        "bob@example.com", "carol@example.com", "dan@example.com",
        "lou@example.com", "robert@example.com", "zoe@example.com"])
    assert world.text(".prev") == HAND
    assert not os.path.exists(world.path + ".tmp")

    # Mail: imported users to notes, rewritten; the conflict stays here.
    assert world.send("bob@example.com", "robert@example.com",
                      "lou@example.com", "zoe@example.com",
                      "alice@example.com", "lost@example.com") == \
        {"lost@example.com"}
    assert rcpts(world.notes, 1) == sorted([
        "bob@notes.example.com", "bob@notes.example.com",
        "lou.reed@notes.example.com", "zoe@notes.example.com"])
    assert rcpts(world.local, 1) == ["alice@example.com"]
    assert world.lookup("lou@example.com")["rewritten"] == \
        "lou.reed@notes.example.com"


def test_second_import_applies_exactly_the_difference(world, slapd):
    exp = world.export(slapd)
    assert world.run("import", "people", exp).returncode == 0
    first = world.text()
    inode = os.stat(world.path).st_ino

    # In the other system dan leaves and carol moves.
    r = subprocess.run(["ldapdelete", "-x", "-H", slapd.url, "-D",
                        "cn=admin," + BASE, "-w", "admin",
                        "cn=dan," + NOTES], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    ldap(slapd, "ldapmodify", "dn: cn=carol,%s\nchangetype: modify\n"
         "replace: targetAddress\ntargetAddress: SMTP:carol.new@notes."
         "example.com\n" % NOTES)
    exp2 = world.export(slapd, "export2.ldif")

    r = world.run("--json", "import", "-n", "people", exp2)
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["counts"]["added"] == 0 and j["counts"]["removed"] == 1
    assert j["counts"]["changed"] == 1 and j["counts"]["unchanged"] == 4
    assert j["removed"] == [{
        "address": "dan@example.com", "kind": "custom",
        "target": "dan@notes.example.com",
        "line": first.splitlines().index(
            [l for l in first.splitlines() if l.startswith("dan@")][0]) + 1}]
    assert j["changed"][0]["address"] == "carol@example.com"
    assert j["changed"][0]["target"] == "carol.new@notes.example.com"
    assert j["changed"][0]["old_target"] == "carol@notes.example.com"
    assert j["added"] == [] and j["written"] is False
    assert world.text() == first

    r = world.run("import", "people", exp2)
    assert r.returncode == 0, r.stderr
    second = world.text()
    # Exactly that difference, everything else byte for byte.
    a = [l for l in first.splitlines() if not l.startswith(("dan@", "carol@"))]
    b = [l for l in second.splitlines() if not l.startswith("carol@")]
    assert a == b
    assert [l for l in second.splitlines() if l.startswith("carol@")] == [
        "carol@example.com               custom carol.new@notes.example.com"
        "     # import"]
    assert first.splitlines().index(
        [l for l in first.splitlines() if l.startswith("carol@")][0]) == \
        second.splitlines().index(
        [l for l in second.splitlines() if l.startswith("carol@")][0])
    assert world.text(".prev") == first
    assert os.stat(world.path + ".prev").st_ino == inode
    assert world.lookup("carol@example.com")["rewritten"] == \
        "carol.new@notes.example.com"
    assert world.lookup("dan@example.com")["code"] == 550

    # Nothing new: nothing written, no reload (an extension of SPEC §12).
    gen = world.d.ctl_json("show", "status")["generation"]
    inode = os.stat(world.path).st_ino
    r = world.run("import", "people", exp2)
    assert r.returncode == 0
    assert r.stdout.rstrip().endswith("no change: %s not written, splitmxd "
                                      "not reloaded" % world.path)
    assert world.text() == second and world.text(".prev") == first
    assert os.stat(world.path).st_ino == inode
    assert world.d.ctl_json("show", "status")["generation"] == gen


def test_hand_written_lines_are_never_touched(world, slapd):
    # An address written by hand that the export also has stays as written.
    with open(world.path, "a") as f:
        f.write("bob@example.com   custom  bob.special@elsewhere.example\n"
                "# a trailing comment\n")
    hand = world.text()
    exp = world.export(slapd)
    r = world.run("import", "people", exp)
    assert r.returncode == 0, r.stderr
    assert ("conflict  bob@example.com stays custom "
            "bob.special@elsewhere.example (directory:5)") in r.stdout
    assert world.text().startswith(hand)
    assert "bob@example.com" not in imported(world.text())
    assert world.lookup("bob@example.com")["rewritten"] == \
        "bob.special@elsewhere.example"


def test_csv_export(world):
    csv = world.write("people.csv",
                      "address,target,kind\r\n"
                      "\"ann@example.com\",\"ann@notes.example.com\",\r\n"
                      "Ben@Example.com,\"SMTP:ben@notes.example.com\",custom\r\n"
                      "\"cy@example.com\",,local\r\n"
                      "alice@example.com,alice@notes.example.com,\r\n"
                      "dee@example.com,dee@example.com,\r\n")
    r = world.run("import", "people", csv)
    assert r.returncode == 0, r.stderr
    assert "3 added, 0 removed, 0 changed, 1 conflict" in r.stdout
    assert ("%s:6: warning: dee@example.com: target dee@example.com is in "
            "the shared domain example.com" % csv) in r.stderr
    text = world.text()
    assert text.startswith(HAND)
    assert imported(text) == ["ann@example.com", "ben@example.com",
                              "cy@example.com"]
    assert "cy@example.com                  local  # import" in text
    assert world.send("ann@example.com", "ben@example.com",
                      "cy@example.com") == set()
    assert rcpts(world.notes, 1) == ["ann@notes.example.com",
                                     "ben@notes.example.com"]
    assert rcpts(world.local, 1) == ["cy@example.com"]


def test_refused_reload_puts_the_previous_file_back(world, slapd):
    exp = world.export(slapd)
    assert world.run("import", "people", exp).returncode == 0
    good = world.text()
    # Someone breaks the configuration: the next reload is refused.
    with open(world.d.conf_path, "a") as f:
        f.write("\nlimit recipients banana\n")
    csv = world.write("more.csv", "address,target\n"
                      "new@example.com,new@notes.example.com\n")
    r = world.run("import", "people", csv)
    assert r.returncode == 1
    assert "reload refused, the previous directory is back" in r.stderr
    assert "splitmx.conf:" in r.stderr
    assert world.text() == good
    assert world.text(".prev") == good
    assert not os.path.exists(world.path + ".tmp")
    assert world.lookup("new@example.com")["code"] == 550
    assert world.lookup("bob@example.com")["route"] == "custom"

    r = world.run("--json", "import", "people", csv)
    assert r.returncode == 1
    j = json.loads(r.stdout)
    assert j["reload"]["status"] == "refused" and j["reload"]["restored"]
    assert world.text() == good


MALFORMED = [
    ("bad-base64.ldif",
     "dn: cn=a,ou=notes\nmail: a@example.com\n\n"
     "dn: cn=b,ou=notes\nmail:: Ym9iQGV4YW1wbGUu!!!\n", ":5: mail: invalid base64"),
    ("no-at.ldif",
     "dn: cn=a,ou=notes\nmail: a@example.com\n\n"
     "dn: cn=b,ou=notes\nproxyAddresses: smtp:bob\n",
     ":5: proxyAddresses: \"smtp:bob\": missing @domain"),
    ("latin1.ldif",
     "dn: cn=a,ou=notes\nmail: a@example.com\n\n"
     "dn: cn=b,ou=notes\nmail: b\xe9b\xe9@example.com\n", ":5: not UTF-8"),
    ("latin1.csv",
     "address,target\na@example.com,a@notes.example.com\n"
     "j\xf6rg@example.com,j@notes.example.com\n", ":3: not UTF-8"),
    ("no-header.csv",
     "mail,targetAddress\na@example.com,a@notes.example.com\n",
     ":1: the header has no \"address\" column"),
    ("no-at.csv", "address,target\na@example.com,a-at-notes\n",
     ":2: target: \"a-at-notes\": missing @domain"),
]


@pytest.mark.parametrize("name,data,msg", MALFORMED,
                         ids=[m[0] for m in MALFORMED])
def test_malformed_export_changes_nothing(world, name, data, msg):
    path = world.write(name, data.encode("latin-1"))
    st = os.stat(world.path)
    r = world.run("import", "people", path)
    assert r.returncode == 1
    assert path + msg in r.stderr, r.stderr
    assert "nothing changed" in r.stderr
    assert r.stdout == ""
    assert world.text() == HAND
    st2 = os.stat(world.path)
    assert (st2.st_ino, st2.st_mtime_ns) == (st.st_ino, st.st_mtime_ns)
    assert not os.path.exists(world.path + ".prev")
    assert not os.path.exists(world.path + ".tmp")
    r = world.run("--json", "import", "people", path)
    j = json.loads(r.stdout)
    assert r.returncode == 1 and any(path + msg in e for e in j["errors"])


def test_dry_run_json_parses_and_writes_nothing(world, slapd):
    exp = world.export(slapd)
    st = os.stat(world.path)
    r = world.run("import", "-n", "--json", "people", exp)
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["table"] == "people" and j["file"] == world.path
    assert j["dry_run"] is True and j["written"] is False
    assert j["counts"] == {"added": 6, "removed": 0, "changed": 0,
                           "conflicts": 1, "unchanged": 0, "left_out": 1,
                           "ignored": 0, "entries": 6}
    assert {"address": "lou@example.com", "kind": "custom",
            "target": "lou.reed@notes.example.com",
            "source": "%s:%d" % (exp, line_of(exp, "mail: lou@"))} in \
        j["added"]
    assert j["conflicts"][0]["address"] == "alice@example.com"
    assert j["conflicts"][0]["kind"] == "local"
    assert j["conflicts"][0]["export_target"] == "alice@notes.example.com"
    assert len(j["warnings"]) == 1 and "lost@example.com" in j["warnings"][0]
    assert r.stderr == ""
    assert world.text() == HAND
    assert os.stat(world.path).st_mtime_ns == st.st_mtime_ns
    assert not os.path.exists(world.path + ".prev")

    r = world.run("--json", "import", "people", exp)
    j = json.loads(r.stdout)
    assert r.returncode == 0 and j["written"] is True
    assert j["reload"]["status"] == "applied"
    assert "directory people: 9 entries" in j["reload"]["message"]


def test_a_loop_through_the_import_is_refused(world):
    # A hand-written line in the other system's domain (odd, but legal)
    # and an imported contact that points at it make a cycle.
    with open(world.path, "a") as f:
        f.write("ring@notes.example.com  custom  ring@example.com\n")
    hand = world.text()
    csv = world.write("ring.csv", "address,target\n"
                      "ok@example.com,ok@notes.example.com\n"
                      "ring@example.com,ring@notes.example.com\n")
    r = world.run("import", "people", csv)
    assert r.returncode == 1
    assert ("%s:5: custom recipient chain loops: ring@notes.example.com -> "
            "ring@example.com -> ring@notes.example.com (ring@example.com "
            "from %s:3)" % (world.path, csv)) in r.stderr, r.stderr
    assert "would be refused after this import; nothing changed" in r.stderr
    assert world.text() == hand

    # Chains longer than 8 steps are refused the same way.
    with open(world.path, "w") as f:
        f.write(HAND + "".join(
            "c%d@notes.example.com custom c%d@notes.example.com\n" % (i, i + 1)
            for i in range(9)))
    csv = world.write("chain.csv", "address,target\n"
                      "long@example.com,c0@notes.example.com\n")
    r = world.run("import", "people", csv)
    assert r.returncode == 1
    assert "custom recipient chain is longer than 8 steps" in r.stderr
    assert "(long@example.com from %s:2)" % csv in r.stderr, r.stderr


def test_routing_domain_from_the_command_line(smx, dns):
    # "[host]" names a host, not the other system's mail domain.
    w = World(smx, dns, forward="[127.0.0.1]:9")
    try:
        ldif = w.write("x.ldif",
                       "dn: cn=lou\nmail: lou@example.com\n"
                       "proxyAddresses: smtp:lou@notes.example.com\n"
                       "targetAddress: SMTP:lou@example.com\n")
        r = w.run("import", "-n", "people", ldif)
        assert r.returncode == 0
        assert ("%s:1: warning: lou@example.com: target lou@example.com is "
                "in the shared domain example.com and no routing domain of "
                "the other system is known (--routing-domain): left out"
                % ldif) in r.stderr
        r = w.run("import", "-n", "--routing-domain", "notes.example.com",
                  "people", ldif)
        assert r.returncode == 0 and r.stderr == ""
        assert "added     lou@example.com custom lou@notes.example.com" in \
            r.stdout
        # A routing domain inside the shared one would loop: refused.
        r = w.run("import", "--routing-domain", "x.example.com",
                  "--domain", ".example.com", "people", ldif)
        assert r.returncode == 1 and "routing domain x.example.com is in " \
            "the shared domain .example.com" in r.stderr
    finally:
        w.stop()


def test_usage_and_unknown_table(world):
    r = world.run("import", "people")
    assert r.returncode == 2 and "usage:" in r.stderr
    r = world.run("import", "--format", "xml", "people", "x")
    assert r.returncode == 2
    r = world.run("import", "nosuch", "/dev/null")
    assert r.returncode == 1 and "no table nosuch" in r.stderr
    # Standard input is an export too.
    r = world.run("import", "-n", "people", "-",
                  stdin="address,target\nq@example.com,q@notes.example.com\n")
    assert r.returncode == 0 and "(stdin:2)" in r.stdout
    # The usage is the verb table's, import and import-info included.
    r = world.run("-h")
    assert "\timport-info TABLE\n" in r.stderr
    assert "\timport [-n] [options] TABLE FILE\n" in r.stderr
    # import is splitmxctl's own: the daemon has no such request.
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(world.d.control)
        s.sendall(b"text import people /dev/null\n")
        answer = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            answer += b
    assert answer == b"1\nunknown request: import people\n"


root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@root_only
def test_an_unprivileged_admin_imports_and_others_may_not(smx, dns):
    """The export is parsed by splitmxctl as the administrator: here
    nobody, in the admin group, owning the directory's folder."""
    tables = os.path.join(smx.tmp, "tables")
    os.mkdir(tables)
    pw = pwd.getpwnam("nobody")
    w = World(smx, dns, tables=tables,
              conf='control socket "{tmp}/control.sock" group "nogroup"\n'
                   'control admin group "nogroup"\n')
    try:
        for p in (tables, w.path):
            os.chown(p, pw.pw_uid, pw.pw_gid)
        csv = w.write("people.csv", "address,target\n"
                      "ann@example.com,ann@notes.example.com\n")
        os.chmod(csv, 0o644)
        r = w.run("import", "people", csv, user="nobody")
        assert r.returncode == 0, r.stderr
        assert "ann@example.com" in imported(w.text())
        st = os.stat(w.path)
        assert (st.st_uid, st.st_mode & 0o777) == (pw.pw_uid, 0o644)
        assert w.lookup("ann@example.com")["rewritten"] == \
            "ann@notes.example.com"
    finally:
        w.stop()

    # Outside the admin group: refused before the export is read.
    shutil.rmtree(tables)
    os.mkdir(tables)
    w = World(smx, dns, tables=tables,
              conf='control socket "{tmp}/control.sock" group "nogroup"\n')
    try:
        r = w.run("import", "-n", "people", "/nonexistent", user="nobody")
        assert r.returncode == 1
        assert "permission denied: import-info needs root or the control " \
            "admin group" in r.stderr
        assert w.text() == HAND
    finally:
        w.stop()


def reader_of(pid, timeout=20):
    """The child of splitmxctl (pid) that reads the export, once it has
    dropped root: its /proc status as a dict."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for task in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, task)) as f:
                for child in f.read().split():
                    try:
                        with open("/proc/%s/status" % child) as g:
                            st = dict(l.split(":", 1) for l in g)
                    except OSError:
                        continue
                    st = {k: v.strip() for k, v in st.items()}
                    if st["Uid"].split()[0] != "0":
                        return int(child), st
        time.sleep(0.05)
    raise AssertionError("no unprivileged child of splitmxctl")


@root_only
def test_as_root_the_export_is_read_by_nobody(world):
    """Run as root, splitmxctl reads and parses the export in a child
    that is nobody, chrooted to /var/empty, without new privileges and
    without the table's descriptor; it gets back only what was found."""
    pw = pwd.getpwnam("nobody")
    p = subprocess.Popen([SPLITMXCTL, "-s", world.d.control, "import", "-n",
                          "people", "-"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        child, st = reader_of(p.pid)
        assert st["Uid"].split() == [str(pw.pw_uid)] * 4
        assert st["Gid"].split() == [str(pw.pw_gid)] * 4
        assert st["Groups"].split() == [str(pw.pw_gid)]
        assert st["NoNewPrivs"] == "1"
        assert os.readlink("/proc/%d/root" % child) == "/var/empty"
        fds = {int(fd): os.readlink("/proc/%d/fd/%s" % (child, fd))
               for fd in os.listdir("/proc/%d/fd" % child)}
        assert fds[0].startswith("pipe:")             # the export
        assert fds[1] == fds[2] == "/dev/null"
        # Else only the socket back: not the table, nor its lock.
        rest = [t for fd, t in fds.items() if fd > 2]
        assert len(rest) == 1 and rest[0].startswith("socket:"), fds
        out, err = p.communicate("address,target\n"
                                 "q@example.com,q@notes.example.com\n",
                                 timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    assert "added     q@example.com custom q@notes.example.com (stdin:2)" \
        in out


@root_only
def test_a_reader_that_dies_changes_nothing(world):
    p = subprocess.Popen([SPLITMXCTL, "-s", world.d.control, "import",
                          "people", "-"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        child, _ = reader_of(p.pid)
        os.kill(child, signal.SIGKILL)
        out, err = p.communicate("address,target\n"
                                 "q@example.com,q@notes.example.com\n",
                                 timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 1
    assert "the reader of the export stopped early" in err, err
    assert "cannot read stdin; nothing changed" in err
    assert world.text() == HAND
    assert not os.path.exists(world.path + ".prev")
