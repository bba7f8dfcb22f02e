"""The configuration language and the directory file (splitmx.conf(5)).

Golden printouts of `splitmxd -nv` for regress/config/*.conf (bgpd's way),
a round trip of every printout, the broken configurations of
regress/config/broken/ with the errors they must give (their
"# expect: FILE:LINE: message" lines), and the examples in etc/.
Run from the repository root.
"""
import glob
import os
import re
import shutil
import socket
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OBJ = os.environ.get("SPLITMX_OBJ", "obj")
SPLITMXD = os.path.join(ROOT, OBJ, "splitmxd")
CONFDIR = os.path.join("regress", "config")

VALID = sorted(glob.glob(os.path.join(CONFDIR, "*.conf"), root_dir=ROOT))
BROKEN = sorted(glob.glob(os.path.join(CONFDIR, "broken", "*.conf"),
                          root_dir=ROOT))
EXAMPLES = sorted(glob.glob(os.path.join("etc", "*.conf"), root_dir=ROOT))

ERRLINE = re.compile(r"^\S+:\d+: ")


def splitmxd_n(conf, verbose=True, cwd=ROOT):
    args = [SPLITMXD, "-n"] + (["-v"] if verbose else []) + ["-f", conf]
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True,
                          timeout=60)


def system_hostname():
    """What conf_new() takes as the default host name."""
    h = socket.gethostname()
    ok = re.fullmatch(r"[A-Za-z0-9_-]{1,63}(\.[A-Za-z0-9_-]{1,63})*", h)
    return h if ok and len(h) < 256 else "localhost"


def golden(conf):
    with open(os.path.join(ROOT, conf[:-len(".conf")] + ".ok")) as fp:
        return fp.read().replace("@HOSTNAME@", system_hostname())


def printout(res):
    """The configuration part of a -nv run."""
    assert res.stdout.endswith("configuration OK\n"), res.stdout
    return res.stdout[:-len("configuration OK\n")]


def round_trip(res, tmp_path, cwd=ROOT):
    """Parse the printout again: it must print the same."""
    again = tmp_path / "printout.conf"
    again.write_text(printout(res))
    res2 = splitmxd_n(str(again), cwd=cwd)
    assert res2.returncode == 0, res2.stderr
    assert res2.stdout == res.stdout


def accounts(conf):
    """The users and groups conf names: -n checks that they exist."""
    with open(os.path.join(ROOT, conf)) as fp:
        text = fp.read()
    users = set(re.findall(r'^\s*user\s+"([^"]+)"', text, re.M)) or \
        {"_splitmx"}
    return users, set(re.findall(r'\bgroup\s+"([^"]+)"', text))


def need_accounts(conf):
    from conftest import ensure_accounts
    missing = ensure_accounts(*accounts(conf))
    if missing:
        pytest.skip("needs root to create " + ", ".join(missing))


@pytest.mark.parametrize("conf", VALID)
def test_config_golden_printout(conf):
    need_accounts(conf)
    res = splitmxd_n(conf)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    assert res.stdout == golden(conf)


@pytest.mark.parametrize("conf", VALID)
def test_config_printout_parses_to_itself(conf, tmp_path):
    need_accounts(conf)
    res = splitmxd_n(conf)
    assert res.returncode == 0, res.stderr
    round_trip(res, tmp_path)


@pytest.mark.parametrize("conf", VALID)
def test_config_check_without_v_says_ok(conf):
    need_accounts(conf)
    res = splitmxd_n(conf, verbose=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "configuration OK\n"


def expectations(conf):
    # A broken file may hold any octet; its "# expect:" lines are ASCII.
    with open(os.path.join(ROOT, conf), errors="replace") as fp:
        exp = [l[len("# expect: "):].rstrip("\n") for l in fp
               if l.startswith("# expect: ")]
    assert exp, conf + ": no '# expect:' line"
    return exp


def test_config_enough_broken_cases():
    assert len(BROKEN) >= 25


@pytest.mark.parametrize("conf", BROKEN)
def test_config_broken_is_refused_with_its_errors(conf):
    res = splitmxd_n(conf)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "configuration OK" not in res.stdout
    got = res.stderr.splitlines()
    for line in expectations(conf):
        assert line in got, "missing: %s\ngot:\n%s" % (line, res.stderr)
    # and nothing else that looks like an error
    extra = [l for l in got if ERRLINE.match(l)
             and l not in expectations(conf)]
    assert extra == []


def test_config_missing_file():
    res = splitmxd_n(os.path.join(CONFDIR, "no-such.conf"))
    assert res.returncode == 1
    assert "no-such.conf" in res.stderr
    assert "configuration OK" not in res.stdout


def test_config_bind_password_not_printed():
    res = splitmxd_n(os.path.join(CONFDIR, "full.conf"))
    assert res.returncode == 0
    assert "secret" not in res.stdout
    assert 'password "********"' in res.stdout


def example_world(example, tmp_path):
    """The example with its /etc/splitmx files made up in tmp_path."""
    with open(os.path.join(ROOT, example)) as fp:
        text = fp.read()
    etc = tmp_path / "etc-splitmx"
    etc.mkdir()
    for name in set(re.findall(r'"/etc/splitmx/([^"]+)"', text)):
        dst = etc / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        here = os.path.join(ROOT, "etc", name)
        if name.endswith(".conf") and os.path.exists(here):
            shutil.copy(here, dst)
        elif name.endswith((".crt", ".key")):
            # A pair that goes together: -n tries it with libtls.
            shutil.copy(os.path.join(ROOT, CONFDIR, "files",
                                     "mx1" + name[-4:]), dst)
        else:
            shutil.copy(os.path.join(ROOT, CONFDIR, "files", "directory"),
                        dst)
    conf = tmp_path / os.path.basename(example)
    conf.write_text(text.replace('"/etc/splitmx/', '"%s/' % etc))
    return str(conf)


@pytest.mark.parametrize("example", EXAMPLES)
def test_config_etc_example_is_valid(example, tmp_path):
    conf = example_world(example, tmp_path)
    res = splitmxd_n(conf)
    assert res.returncode == 0, res.stderr
    assert res.stdout.endswith("configuration OK\n")
    round_trip(res, tmp_path)


def test_config_etc_example_as_shipped_names_etc_splitmx():
    with open(os.path.join(ROOT, "etc", "splitmx.conf")) as fp:
        text = fp.read()
    assert '"/etc/splitmx/' in text


def test_config_errors_in_every_line_are_all_reported(tmp_path):
    conf = tmp_path / "many.conf"
    lines = ["listen on 127.0.0.1"] + ["limit recipients 0"] + \
        ['domain "bad domain%d" {\n\ttype relay\n}' % i for i in range(5)]
    conf.write_text("\n".join(lines) + "\n")
    res = splitmxd_n(str(conf))
    assert res.returncode == 1
    assert len([l for l in res.stderr.splitlines()
                if ERRLINE.match(l)]) == 6


def test_config_directory_with_a_million_entries_loads(tmp_path):
    # Its speed is measured by bench/route_bench.py, not asserted here.
    if "asan" in OBJ:
        pytest.skip("memory under the sanitizers means nothing")
    d = tmp_path / "directory"
    with open(d, "w") as fp:
        for i in range(1000000):
            if i % 3:
                fp.write("first.last%07d@example.com local\n" % i)
            else:
                fp.write("First.Last%07d@Example.com custom "
                         "first.last%07d@notes.example.com\n" % (i, i))
    conf = tmp_path / "big.conf"
    conf.write_text('listen on 127.0.0.1\ntable big file "%s"\n' % d)
    # A fresh interpreter, so that only splitmxd counts in its children.
    probe = ("import resource, subprocess, sys, time\n"
             "t = time.monotonic()\n"
             "r = subprocess.run(sys.argv[1:], capture_output=True)\n"
             "t = time.monotonic() - t\n"
             "m = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
             "print(r.returncode, t, m)\n")
    res = subprocess.run([sys.executable, "-c", probe, SPLITMXD, "-n", "-f",
                          str(conf)], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    rc, secs, kbytes = res.stdout.split()
    assert rc == "0"
    assert int(kbytes) < 200 * 1024
