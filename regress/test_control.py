"""splitmxctl: verbs, exit codes, permissions; the status socket."""
import os
import subprocess

import pytest

from conftest import SPLITMXCTL

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def test_usage_errors_exit_2(smx):
    d = smx.start()
    for args in ([], ["show"], ["show", "nothing"], ["frobnicate"],
                 ["lookup"], ["log", "loud"], ["schedule"],
                 ["pause", "everything"]):
        r = d.ctl(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "usage" in r.stderr


def test_no_daemon_exit_1(tmp_path):
    r = subprocess.run([SPLITMXCTL, "-s", str(tmp_path / "none.sock"),
                        "show", "status"], capture_output=True, text=True)
    assert r.returncode == 1
    assert "is splitmxd running" in r.stderr


def test_status_socket_has_spec_keys(smx):
    d = smx.start()
    st = d.status_json()
    for k in ["version", "uptime", "sessions.active", "sessions.total",
              "messages.accepted", "messages.delivered",
              "messages.deferred", "messages.bounced", "recipients.local",
              "recipients.custom", "recipients.forwarded",
              "recipients.rejected", "queue.messages", "queue.oldest_age",
              "generation", "loaded", "processes"]:
        assert k in st, k
    assert set(st["processes"]) == {"parent", "smtp", "lookup", "queue",
                                    "relay", "control", "filter"}


def test_show_stats_lines(smx):
    d = smx.start()
    r = d.ctl("show", "stats")
    assert r.returncode == 0
    kv = dict(l.split("=", 1) for l in r.stdout.splitlines())
    assert kv["messages.accepted"] == "0"
    js = d.ctl_json("show", "stats")
    assert js["messages.accepted"] == 0


def test_log_verbose_brief(smx):
    d = smx.start()
    assert d.ctl("log", "brief").returncode == 0
    d.wait_log("log verbosity=brief")
    assert d.ctl("log", "verbose").returncode == 0
    d.wait_log("log verbosity=verbose")


def test_reload_applies_new_generation(smx):
    d = smx.start()
    assert d.ctl_json("show", "status")["generation"] == 1
    r = d.ctl("reload")
    assert r.returncode == 0, r.stderr
    assert "generation 2" in r.stdout
    assert d.ctl_json("show", "status")["generation"] == 2
    assert d.status_json()["generation"] == 2


def test_reload_broken_config_keeps_old(smx):
    d = smx.start()
    with open(d.conf_path, "a") as f:
        f.write("limit recipients many\n")
    r = d.ctl("reload")
    assert r.returncode == 1
    nlines = open(d.conf_path).read().count("\n")
    assert "%s:%d:" % (d.conf_path, nlines) in r.stderr
    assert d.ctl_json("show", "status")["generation"] == 1
    r = d.ctl("reload", json_out=True)
    assert r.returncode == 1
    assert '"refused"' in r.stdout


def test_sighup_reloads(smx):
    import signal
    d = smx.start()
    os.kill(d.pid, signal.SIGHUP)
    d.wait_log("reload generation=2 applied")


@root_only
def test_unprivileged_user_can_show_but_not_change(smx):
    d = smx.start('control socket "{tmp}/control.sock" group "nogroup"')
    st = os.stat(d.control)
    assert oct(st.st_mode & 0o777) == "0o660"
    r = d.ctl("show", "status", user="nobody")
    assert r.returncode == 0, r.stderr
    for verb in (["reload"], ["log", "verbose"], ["pause", "smtp"],
                 ["remove", "all"]):
        r = d.ctl(*verb, user="nobody")
        assert r.returncode == 1, verb
        assert "permission denied" in r.stderr
    assert d.ctl("reload").returncode == 0


@root_only
def test_admin_group_may_change(smx):
    d = smx.start('control socket "{tmp}/control.sock" group "nogroup"\n'
                  'control admin group "nogroup"')
    r = d.ctl("reload", user="nobody")
    assert r.returncode == 0, r.stderr


def test_metrics_endpoint(smx):
    from conftest import free_port
    import urllib.request
    mport = free_port()
    d = smx.start("metrics listen on 127.0.0.1 port %d" % mport)
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport,
                                  timeout=5).read().decode()
    seen = {}
    for line in body.splitlines():
        if line.startswith("#") or not line:
            continue
        name, val = line.rsplit(" ", 1)
        seen[name] = float(val)
    assert seen["splitmx_messages_accepted_total"] == 0
    assert "splitmx_queue_messages" in seen
    assert "# TYPE splitmx_messages_accepted_total counter" in body
    assert "# TYPE splitmx_sessions_active gauge" in body
    try:
        urllib.request.urlopen("http://127.0.0.1:%d/other" % mport,
                               timeout=5)
        assert False, "expected 404"
    except urllib.error.HTTPError as e:
        assert e.code == 404


def test_reload_says_what_changed(smx):
    d = smx.start()
    text = open(d.conf_path).read()
    text += "limit recipients 7\n"
    text += 'domain "added.example" {\n\ttype relay\n' \
            '\tforward to "[127.0.0.1]:9"\n}\n'
    with open(d.conf_path, "w") as f:
        f.write(text)
    r = d.ctl("reload")
    assert r.returncode == 0, r.stderr
    assert "changed: limit recipients 7" in r.stdout
    assert 'added: domain "added.example"' in r.stdout
    r = d.ctl("reload")
    assert "no change to the configuration file" in r.stdout


def test_reload_user_change_needs_restart(smx):
    d = smx.start()
    with open(d.conf_path, "a") as f:
        f.write('user "nobody"\n')
    r = d.ctl("reload")
    assert r.returncode == 1
    assert "needs a restart" in r.stderr


@root_only
def test_status_socket_for_its_group_only(smx):
    import grp
    import json
    import pwd
    import socket
    d = smx.start('status socket "{tmp}/status.sock" group "nogroup"')
    st = os.stat(d.status)
    assert oct(st.st_mode & 0o777) == "0o660"
    assert st.st_gid == grp.getgrnam("nogroup").gr_gid
    code = ("import socket,sys\n"
            "s=socket.socket(socket.AF_UNIX)\n"
            "s.connect(sys.argv[1])\n"
            "sys.stdout.write(s.recv(65536).decode())\n")

    def as_user(name):
        pw = pwd.getpwnam(name)
        return subprocess.run(["/usr/bin/python3", "-c", code, d.status],
                              capture_output=True, text=True, timeout=10,
                              user=pw.pw_uid, group=pw.pw_gid,
                              extra_groups=[])
    r = as_user("nobody")
    assert r.returncode == 0, r.stderr
    assert "messages.accepted" in json.loads(r.stdout)
    r = as_user("daemon")
    assert r.returncode != 0
    assert "Permission denied" in r.stderr
