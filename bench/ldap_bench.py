#!/usr/bin/python3
"""LDAP table benchmark (issue 8): RCPT classifications per second with
the directory in a local slapd, through the whole smtp -> lookup path.

A slapd (Debian's, mdb, on a loopback high port, with the test schema
of regress/test_ldap.py) gets N entries (20,000 by default: 70% local
users, 30% contacts with a targetAddress).  A splitmxd with an LDAP
table ("cache 10m") is asked by S concurrent SMTP sessions, pipelined
(MAIL, 50 RCPTs, RSET in one write), with the address mix of
bench/route_bench.py (known, +detail, upper case, 10% unknown):

  cold   every address asked for the first time: every RCPT costs one
         to three LDAP searches (exact, without +detail, @domain)
  warm   the same addresses again: answered from the cache
  nocache  the same with "cache 0": every RCPT asks the server

Recipients per second, counted at the client.  Prints a Markdown
section for bench/RESULTS.md.

usage: ldap_bench.py [--obj obj] [--entries N] [--sessions S]
                     [--seconds T]
"""
import argparse
import asyncio
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "regress"))
sys.path.insert(0, os.path.join(TOP, "bench"))

import rcptload  # noqa: E402
from test_ldap import BASE, SCHEMA  # noqa: E402


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, what):
    return rcptload.wait_for(pred, timeout, what, "ldap_bench")


def port_open(port):
    import socket
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def gen_ldif(path, n):
    with open(path, "w") as f:
        f.write("dn: %s\nobjectClass: dcObject\nobjectClass: organization"
                "\no: Example\ndc: example\n\n" % BASE)
        f.write("dn: ou=people,%s\nobjectClass: organizationalUnit\n"
                "ou: people\n\n" % BASE)
        for i in range(n):
            f.write("dn: uid=user%07d,ou=people,%s\n" % (i, BASE))
            f.write("objectClass: inetOrgPerson\n"
                    "objectClass: splitmxRecipient\n")
            f.write("uid: user%07d\ncn: User %d\nsn: Bench\n" % (i, i))
            f.write("mail: user%07d@example.com\n" % i)
            if i % 10 >= 7:
                f.write("targetAddress: SMTP:user%07d@notes.example.com\n"
                        % i)
            f.write("\n")


def start_slapd(work, n):
    os.makedirs(os.path.join(work, "db"))
    with open(os.path.join(work, "test.schema"), "w") as f:
        f.write(SCHEMA)
    conf = os.path.join(work, "slapd.conf")
    with open(conf, "w") as f:
        f.write("\n".join([
            "include /etc/ldap/schema/core.schema",
            "include /etc/ldap/schema/cosine.schema",
            "include /etc/ldap/schema/inetorgperson.schema",
            "include %s/test.schema" % work,
            "pidfile %s/slapd.pid" % work,
            "modulepath /usr/lib/ldap", "moduleload back_mdb",
            "database mdb", 'suffix "%s"' % BASE,
            "directory %s/db" % work, "maxsize 1073741824",
            "index objectClass,mail,proxyAddresses eq", ""]))
    ldif = os.path.join(work, "data.ldif")
    gen_ldif(ldif, n)
    t0 = time.monotonic()
    subprocess.run(["slapadd", "-q", "-f", conf, "-l", ldif], check=True)
    load = time.monotonic() - t0
    port = free_port()
    p = subprocess.Popen(["slapd", "-f", conf, "-h",
                          "ldap://127.0.0.1:%d/" % port, "-d", "0"],
                         stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    wait_for(lambda: port_open(port), 20, "slapd")
    return p, port, load


def start_splitmxd(obj, work, ldap_port, cache):
    os.makedirs(work)
    os.chmod(work, 0o755)
    port = free_port()
    conf = os.path.join(work, "splitmx.conf")
    with open(conf, "w") as f:
        f.write("""hostname "mx.bench.example"
queue "%(w)s/queue"
control socket "%(w)s/control.sock"
status socket "%(w)s/status.sock"
listen on 127.0.0.1 port %(p)d
limit sessions 5000
limit sessions-per-ip 5000
table corp ldap {
\turl "ldap://127.0.0.1:%(l)d"
\tbase "%(b)s"
\tcache %(c)s
}
domain "example.com" {
\ttype shared
\tdirectory corp
\tlocal to "[127.0.0.1]:9"
\tforward to "[127.0.0.1]:9"
}
""" % {"w": work, "p": port, "l": ldap_port, "b": BASE, "c": cache})
    log = open(os.path.join(work, "splitmxd.log"), "wb")
    p = subprocess.Popen([os.path.join(obj, "splitmxd"), "-d", "-f", conf],
                         stdout=log, stderr=log)
    wait_for(lambda: port_open(port), 20, "splitmxd")
    return p, port


def addresses(n, count, seed):
    """Distinct mailboxes (each i once) in route_bench.py's mix."""
    rnd = random.Random(seed)
    return [rcptload.mix(rnd, i) for i in rnd.sample(range(n), min(n, count))]


async def rate(port, addrs, sessions, seconds, once):
    """once: every address one time; else as many as seconds allow."""
    async def work(s, t0):
        if once:
            while s.left() > 0:
                await s.pipelined(s.take(min(50, s.left())))
            return
        while time.monotonic() < t0 + seconds:
            await s.pipelined(s.take(50))
    return await rcptload.rcpt_rate(port, addrs, sessions, work)


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--obj", default=os.path.join(TOP, "obj"))
    ap.add_argument("--entries", type=int, default=20000)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=10)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="ldapbench", dir="/tmp")
    os.chmod(work, 0o755)
    slapd = smx = None
    try:
        slapd, lport, load = start_slapd(os.path.join(work, "slapd"),
                                         a.entries)
        addrs = addresses(a.entries, a.entries, 11)
        smx, port = start_splitmxd(a.obj, os.path.join(work, "smx"),
                                   lport, "10m")
        cold = asyncio.run(rate(port, addrs, a.sessions, 0, True))
        warm = asyncio.run(rate(port, addrs, a.sessions, a.seconds, False))
        stop(smx)
        smx, port = start_splitmxd(a.obj, os.path.join(work, "smx0"),
                                   lport, "0s")
        nocache = asyncio.run(rate(port, addrs, a.sessions, a.seconds,
                                   False))
        stop(smx)
        smx = None
    finally:
        if smx is not None:
            stop(smx)
        if slapd is not None:
            stop(slapd)
        shutil.rmtree(work, ignore_errors=True)

    with open("/proc/cpuinfo") as f:
        cpu = next((l.split(":", 1)[1].strip() for l in f
                    if l.startswith("model name")), "?")
    print("""## LDAP table: RCPT classification against a local slapd (issue 8)

`python3 bench/ldap_bench.py --entries %d --sessions %d --seconds %g`
on %s, %d cores, Linux %s; slapd %s (mdb), everything on loopback.
%d entries loaded by slapadd in %.1f s.  %d concurrent SMTP sessions,
pipelined (MAIL, 50 RCPTs, RSET per write); address mix: 70%% plain,
10%% +detail, 10%% upper case, 10%% unknown (550).

| cache | RCPT/s | recipients | replies |
|---|---:|---:|---|
| cold (`cache 10m`, every address asked once) | %.0f | %d | %s |
| warm (`cache 10m`, every answer cached) | %.0f | %d | %s |
| none (`cache 0`) | %.0f | %d | %s |

Cold and none cost one LDAP search per known address, two for an
unknown one (the address, then @domain) and up to three with +detail;
all of them go over one connection, several outstanding at once.
""" % (a.entries, a.sessions, a.seconds, cpu, os.cpu_count(),
       platform.release(), slapd_version(), a.entries, load, a.sessions,
       cold[0], cold[1], codes_str(cold[2]), warm[0], warm[1],
       codes_str(warm[2]), nocache[0], nocache[1], codes_str(nocache[2])))


def codes_str(codes):
    return ", ".join("%d: %d" % (c, k) for c, k in sorted(codes.items()))


def slapd_version():
    r = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "slapd"],
                       capture_output=True, text=True)
    return r.stdout.strip() or "?"


if __name__ == "__main__":
    main()
