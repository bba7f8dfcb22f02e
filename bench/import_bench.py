#!/usr/bin/python3
"""Directory import benchmark (issue 15): `splitmxctl import` end to end.

A generated LDIF export of N contacts (100,000 by default, as AD's
ldapsearch -LLL writes them: mail, proxyAddresses with SMTP:/smtp:/X500:
values, targetAddress, folded lines; one in ten with the looping proxy
target that the import replaces) is imported into a file table of a
running splitmxd, including the reload the command asks for.  Then a
second export with 1% of the contacts gone, 1% changed and 1% new, and
the same export a third time (nothing to change: no write, no reload).

Measured: wall time of each command (from start to the reload's
answer), splitmxctl's peak memory (ru_maxrss of the child), and the
daemon's side of the reload: the lookup process' load time (its log
line) and the VmHWM of the parent and the lookup process from /proc.
Everything runs on loopback under a temporary directory; no mail is
sent.  Prints a Markdown section for bench/RESULTS.md.

usage: import_bench.py [--obj obj] [--entries N] [--runs R]
"""
import argparse
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def gen_export(path, n, gone=(), changed=(), new=0):
    """n contacts; a contact in changed gets another target; new adds
    contacts after the last one."""
    with open(path, "w") as f:
        for i in list(range(n)) + list(range(n, n + new)):
            if i in gone:
                continue
            u = "user%07d" % i
            f.write("dn: cn=%s Contact,ou=Contacts,ou=Notes Users,"
                    "dc=example,dc=com\n" % u)
            f.write("objectClass: top\nobjectClass: contact\n")
            f.write("mail: %s@example.com\n" % u)
            f.write("proxyAddresses: SMTP:%s@example.com\n" % u)
            f.write("proxyAddresses: smtp:%s@notes.example.com\n" % u)
            # ldapsearch folds at 76 columns
            x500 = ("proxyAddresses: X500:/o=Example/ou=Exchange Administrat"
                    "ive Group/cn=Recipients/cn=%s" % u)
            f.write(x500[:76] + "\n " + x500[76:] + "\n")
            tgt = "%s.v2" % u if i in changed else u
            if i % 10 == 0:
                f.write("targetAddress: SMTP:%s@example.com\n\n" % u)
            else:
                f.write("targetAddress: SMTP:%s@notes.example.com\n\n" % tgt)


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) // 1024      # MB
    return out


def child(ppid, title):
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(st.rsplit(")", 1)[1].split()[1]) == ppid and title in cmd:
            return int(d)
    return None


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise SystemExit("import_bench: timed out waiting for " + what)


def run(cmd):
    """Wall seconds, peak RSS (MB) and output of one command."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.monotonic()
        p = subprocess.Popen(cmd, stdout=out, stderr=err)
        # wait4: the rusage of that child alone, not of every child.
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.monotonic() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        o, e = out.read().decode(), err.read().decode()
    if p.returncode != 0:
        raise SystemExit("import_bench: %s failed:\n%s%s" % (
            " ".join(cmd), o, e))
    return wall, ru.ru_maxrss // 1024, o


def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // 1024
    return "%s, %d CPUs, %d MB RAM, Linux %s" % (
        cpu, os.cpu_count(), mem, platform.release())


def measure_one(obj, n, port):
    """One fresh daemon, the three imports; a dict of figures."""
    splitmxd = os.path.join(obj, "splitmxd")
    ctlbin = os.path.join(obj, "splitmxctl")
    work = tempfile.mkdtemp(prefix="smximport", dir="/tmp")
    os.chmod(work, 0o755)
    dirpath = os.path.join(work, "directory")
    conf = os.path.join(work, "splitmx.conf")
    log = os.path.join(work, "splitmxd.log")
    ctl = os.path.join(work, "control.sock")
    exp1, exp2 = os.path.join(work, "e1.ldif"), os.path.join(work, "e2.ldif")
    with open(dirpath, "w") as f:
        f.write("# by hand\npostmaster@example.com local\n")
    gen_export(exp1, n)
    pct = max(1, n // 100)
    gen_export(exp2, n, gone=set(range(1, 1 + pct * 3, 3)),
               changed=set(range(2, 2 + pct * 3, 3)), new=pct)
    with open(conf, "w") as f:
        f.write("""hostname "mx.bench.example"
queue "%(w)s/queue"
control socket "%(w)s/control.sock"
status socket "%(w)s/status.sock"
listen on 127.0.0.1 port %(port)d
table people file "%(dir)s"
domain "example.com" {
	type shared
	directory people
	local to "[127.0.0.1]:9" tls none
	forward to "[127.0.0.1]:9" tls none
}
""" % {"w": work, "port": port, "dir": dirpath})
    logf = open(log, "wb")
    d = subprocess.Popen([splitmxd, "-d", "-f", conf], stdout=logf,
                         stderr=logf)
    fig = {"export_mb": os.path.getsize(exp1) / 1e6}
    try:
        wait_for(lambda: subprocess.run(
            [ctlbin, "-s", ctl, "show", "status"],
            capture_output=True).returncode == 0, 60, "the control socket")
        lk = wait_for(lambda: child(d.pid, "splitmxd: lookup"), 10,
                      "the lookup process")
        base = ["-s", ctl, "import", "--routing-domain", "notes.example.com",
                "people"]

        def loaded(gen):
            with open(log, errors="replace") as f:
                m = re.findall(r"event=directory-loaded generation=%d .*"
                               r"entries=(\d+) ms=(\d+)" % gen, f.read())
            return m[-1] if m else None

        fig["first"] = run([ctlbin] + base + [exp1])
        fig["first_summary"] = fig["first"][2].splitlines()[0].replace(
            work + "/", "")
        fig["first_load"] = wait_for(lambda: loaded(2), 30, "the load")
        fig["first_parent"] = proc_status(d.pid)
        fig["first_lookup"] = proc_status(lk)
        fig["dry"] = run([ctlbin, "-s", ctl, "import", "-n",
                          "--routing-domain", "notes.example.com", "people",
                          exp2])
        fig["second"] = run([ctlbin] + base + [exp2])
        fig["second_load"] = wait_for(lambda: loaded(3), 30, "the load")
        fig["second_summary"] = fig["second"][2].splitlines()[0].replace(
            work + "/", "")
        fig["same"] = run([ctlbin] + base + [exp2])
        fig["entries"] = sum(1 for l in open(dirpath) if "# import" in l)
        fig["parent"] = proc_status(d.pid)
        fig["lookup"] = proc_status(lk)
    finally:
        d.send_signal(signal.SIGTERM)
        try:
            d.wait(20)
        except subprocess.TimeoutExpired:
            d.kill()
            d.wait()
        logf.close()
        shutil.rmtree(work, ignore_errors=True)
    return fig


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--obj", default=os.path.join(TOP, "obj"))
    ap.add_argument("--entries", type=int, default=100000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--port", type=int, default=12545)
    a = ap.parse_args()
    runs = []
    for i in range(a.runs):
        runs.append(measure_one(a.obj, a.entries, a.port))
        print("run %d: first %.2f s, second %.2f s" % (
            i + 1, runs[-1]["first"][0], runs[-1]["second"][0]),
            file=sys.stderr)
    best = min(runs, key=lambda f: f["first"][0])

    def span(key):
        v = sorted(f[key][0] for f in runs)
        return "%.2f s" % v[0] if len(v) == 1 else \
            "%.2f s (%.2f to %.2f in %d runs)" % (best[key][0], v[0], v[-1],
                                                   len(v))
    print("## Directory import: `splitmxctl import` of %d contacts "
          "(issue 15)\n" % a.entries)
    print("%s, %s; `bench/import_bench.py --entries %d --runs %d`." % (
        time.strftime("%Y-%m-%d"), machine(), a.entries, a.runs))
    print("Export: an LDIF of %d contacts (%.1f MB) as ldapsearch -LLL "
          "writes AD's (mail,\nthree proxyAddresses, one folded, "
          "targetAddress; one in ten with the looping\nproxy target). "
          "Wall time from the command's start to the reload's answer.\n"
          % (a.entries, best["export_mb"]))
    print("| | |\n|---|---|")
    print("| first import: all added, file written, reload | %s |" %
          span("first"))
    print("| lookup process: load of the new directory at that reload | "
          "%s ms (%s entries) |" % (best["first_load"][1],
                                   best["first_load"][0]))
    print("| `-n` of the second export (read, rules, check; nothing "
          "written) | %s |" % span("dry"))
    print("| second import: 1%% gone, 1%% changed, 1%% new, reload | %s |"
          % span("second"))
    print("| third import, nothing to change (no write, no reload) | %s |"
          % span("same"))
    print("| splitmxctl peak memory (ru_maxrss) | %d MB |" % max(
        f[k][1] for f in runs for k in ("first", "dry", "second", "same")))
    print("| parent VmHWM after the imports (its check at each reload) | "
          "%d MB |" % best["parent"]["VmHWM"])
    print("| lookup process VmRSS / VmHWM after the imports | %d / %d MB |"
          % (best["lookup"]["VmRSS"], best["lookup"]["VmHWM"]))
    print("\nFirst import: `%s`.  \nSecond import: `%s`." % (
        best["first_summary"], best["second_summary"]))


if __name__ == "__main__":
    main()
