"""The C unit tests (TAP programs built from regress/lib/*_test.c)."""
import glob
import os
import subprocess

import pytest

from conftest import OBJ, ROOT

SOURCES = sorted(glob.glob(os.path.join(ROOT, "regress", "lib", "*_test.c")))


@pytest.mark.parametrize("name", [os.path.basename(s)[:-2] for s in SOURCES])
def test_tap(name):
    binary = os.path.join(OBJ, "regress", name)
    assert os.path.exists(binary), "not built: " + binary
    r = subprocess.run([binary], capture_output=True, text=True,
                       errors="replace", timeout=300, cwd=ROOT)
    lines = r.stdout.splitlines()
    plan = [l for l in lines if l.startswith("1..")]
    assert plan, "no TAP plan:\n" + r.stdout + r.stderr
    planned = int(plan[0][3:])
    oks = [l for l in lines if l.startswith("ok ")]
    bad = [l for l in lines if l.startswith("not ok")]
    assert not bad, "\n".join(bad) + "\n" + r.stderr
    assert len(oks) == planned, "%d of %d ran" % (len(oks), planned)
    assert r.returncode == 0, r.stderr
