"""What stops the start is found by splitmxd -n, and the start makes what
it may: the user and groups, the socket and spool directories, the pid
file (splitmxd(8), FILES; splitmx.conf(5))."""
import os
import pwd
import stat
import subprocess

import pytest

from conftest import SPLITMXD, wait_for

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def check(conf, *args):
    return subprocess.run([SPLITMXD, "-n", *args, "-f", conf],
                          capture_output=True, text=True, timeout=30)


def write_conf(tmp_path, body):
    conf = tmp_path / "splitmx.conf"
    conf.write_text(body + "\nlisten on 127.0.0.1 port 9\n"
                    'domain "example.com" {\n\ttype relay\n'
                    '\tforward to "[127.0.0.1]:9"\n}\n')
    os.chmod(tmp_path, 0o755)
    return str(conf)


@root_only
def test_n_finds_missing_accounts_and_directories(tmp_path):
    notsock = tmp_path / "not-a-socket"
    notsock.write_text("precious\n")
    conf = write_conf(tmp_path, f'''
user "_smxnosuchuser"
queue "{tmp_path}/no/such/spool"
control socket "{tmp_path}/nodir/deeper/control.sock" group "smxnosuchgroup"
control admin group "smxnosuchadmin"
status socket "{notsock}"
''')
    r = check(conf)
    assert r.returncode == 1
    assert "configuration OK" not in r.stdout
    assert r.stderr.splitlines() == [
        f'{conf}: user "_smxnosuchuser" does not exist (create it, for '
        'example: adduser --system --group --home /nonexistent '
        '--no-create-home _smxnosuchuser)',
        f'{conf}: group "smxnosuchgroup" (control socket) does not exist',
        f'{conf}: group "smxnosuchadmin" (control admin) does not exist',
        f'{conf}: control socket directory "{tmp_path}/nodir/deeper": '
        'neither it nor its parent exists',
        f'{conf}: status socket "{notsock}" exists and is not a socket',
        f'{conf}: queue directory "{tmp_path}/no/such/spool": neither it '
        'nor its parent exists',
    ]
    assert notsock.read_text() == "precious\n"


@root_only
def test_start_refuses_with_what_n_says_and_touches_nothing(tmp_path):
    conf = write_conf(tmp_path, f'''
queue "{tmp_path}/spool"
control socket "{tmp_path}/control.sock" group "smxnosuchgroup"
status socket "{tmp_path}/status.sock"
''')
    n = check(conf)
    r = subprocess.run([SPLITMXD, "-d", "-f", conf], capture_output=True,
                       text=True, timeout=30)
    assert n.returncode == r.returncode == 1
    assert r.stderr == n.stderr
    assert f'{conf}: group "smxnosuchgroup" (control socket) does not ' \
        'exist\n' == r.stderr
    assert sorted(os.listdir(tmp_path)) == ["splitmx.conf"]


def test_start_creates_run_and_spool_directories(tmp_path):
    conf = write_conf(tmp_path, f'''
queue "{tmp_path}/spool"
control socket "{tmp_path}/run/control.sock"
status socket "{tmp_path}/run2/status.sock"
''')
    log = open(tmp_path / "log", "wb")
    p = subprocess.Popen([SPLITMXD, "-d", "-f", conf], stdout=log,
                         stderr=log, stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: p.poll() is not None or "parent: startup" in
                 open(tmp_path / "log").read(), 10, what="start")
        assert p.poll() is None, open(tmp_path / "log").read()
        for sub in ("run", "run2"):
            st = os.stat(tmp_path / sub)
            assert stat.S_IMODE(st.st_mode) == 0o755, sub
            assert (st.st_uid, st.st_gid) == (os.geteuid(), os.getegid())
        st = os.stat(tmp_path / "spool")
        assert stat.S_IMODE(st.st_mode) == 0o700
        if os.geteuid() == 0:
            pw = pwd.getpwnam("_splitmx")
            assert (st.st_uid, st.st_gid) == (pw.pw_uid, pw.pw_gid)
        text = open(tmp_path / "log").read()
        assert f"created run directory {tmp_path}/run\n" in text
        assert f"created run directory {tmp_path}/run2\n" in text
        assert f"created spool directory {tmp_path}/spool\n" in text
    finally:
        p.terminate()
        assert p.wait(10) == 0
        log.close()


def test_n_accepts_directories_the_start_will_create(tmp_path):
    conf = write_conf(tmp_path, f'''
queue "{tmp_path}/spool"
control socket "{tmp_path}/run/control.sock"
status socket "{tmp_path}/run/status.sock"
''')
    r = check(conf)
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(tmp_path / "run")
    assert not os.path.exists(tmp_path / "spool")


def test_pid_file_beside_the_control_socket(smx):
    d = smx.start()
    pidfile = os.path.join(d.dir, "splitmxd.pid")
    st = os.stat(pidfile)
    assert stat.S_IMODE(st.st_mode) == 0o644
    assert open(pidfile).read() == "%d\n" % d.pid
    assert d.stop() == 0
    assert not os.path.exists(pidfile)


def test_second_daemon_for_the_same_sockets_is_refused(smx):
    d = smx.start()
    r = subprocess.run([SPLITMXD, "-d", "-f", d.conf_path],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert r.stderr == "splitmxd is already running (pid %d, %s)\n" % (
        d.pid, os.path.join(d.dir, "splitmxd.pid"))
    # The first keeps its sockets and its pid file.
    assert d.ctl_ok()
    assert open(os.path.join(d.dir, "splitmxd.pid")).read() == \
        "%d\n" % d.pid


def test_stale_pid_file_after_a_crash_is_taken_over(smx):
    d = smx.start()
    pidfile = os.path.join(d.dir, "splitmxd.pid")
    old = d.pid
    d.kill9()
    assert open(pidfile).read() == "%d\n" % old
    d.start()
    assert d.pid != old
    assert open(pidfile).read() == "%d\n" % d.pid


def test_example_configuration_passes_n_once_the_certificate_is_there(
        tmp_path, certs):
    """etc/splitmx.conf as installed: only the certificate and key the
    administrator puts in place are missing (its paths moved here)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    text = open(os.path.join(root, "etc", "splitmx.conf")).read()
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "directory").write_text(
        open(os.path.join(root, "etc", "directory")).read())
    conf = etc / "splitmx.conf"
    conf.write_text(text.replace('"/etc/splitmx/', '"%s/' % etc))
    r = check(str(conf))
    assert r.returncode == 1
    assert f'pki "mx1": cannot read cert "{etc}/mx1.crt"' in r.stderr
    crt, key = certs
    (etc / "mx1.crt").write_text(open(crt).read())
    (etc / "mx1.key").write_text(open(key).read())
    r = check(str(conf))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "configuration OK\n"
