"""Hardening of the configuration path (issue 18): what a refused reload
may not do to the running daemon.  The parser lets go of everything on
every error path (the parent parses each reload), a bad pki is refused
before anything is applied, a refused reload never loses a socket."""
import os
import socket
import time

from conftest import wait_for

# Statements that a syntax error cuts short, each of a kind that once
# left its allocation behind (issue 18, defect 9): an ldap table line
# without its block, a listen line broken inside its options; and a few
# ordinary errors around them.
BROKEN = """
table \x94 ldap
table o ldap
table p ldap
table "q r" ldap
listen on 127.0.0.1 pki m port
listen on .
hostname "-bad-"
limit recipients many
domain "x.example" {{
	type nonsense
}}
"""


def vm_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for %d" % pid)


def ctl_request(path, line):
    """One request on the control socket, as splitmxctl sends it."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(path)
        s.sendall(line.encode() + b"\n")
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    status, _, text = data.decode("utf-8", "replace").partition("\n")
    return int(status), text


def test_refused_reloads_do_not_grow_the_parent(smx):
    d = smx.start()
    good = open(d.conf_path).read()
    with open(d.conf_path, "w", encoding="latin-1") as f:
        f.write(good + BROKEN.format())
    status, text = ctl_request(d.control, "text reload")
    assert status == 1, text
    assert "syntax error" in text
    # The heap settles during the first reloads; then it must stay.
    for _ in range(50):
        assert ctl_request(d.control, "text reload")[0] == 1
    before = vm_rss_kb(d.pid)
    t0 = time.monotonic()
    for _ in range(1000):
        assert ctl_request(d.control, "text reload")[0] == 1
    after = vm_rss_kb(d.pid)
    elapsed = time.monotonic() - t0
    # Each of these reloads leaked some 40 KB before the fix.
    assert after - before < 1024, (before, after, elapsed)
    with open(d.conf_path, "w") as f:
        f.write(good)
    status, text = ctl_request(d.control, "text reload")
    assert status == 0, text
    assert d.running()
