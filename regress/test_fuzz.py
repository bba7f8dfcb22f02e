"""Every seed and every input a fuzzer once found, through its target again.

The libFuzzer targets (fuzz/*_fuzz.c, fuzz/README) are built with clang
by `make fuzz-build` into $SPLITMX_OBJ/fuzz; each runs once over every
file of fuzz/corpus/NAME/, with ASan, UBSan and LeakSanitizer, and its
own checks of behaviour.  A crash or a failed check fails the test.
"""
import glob
import os
import shutil
import subprocess

import pytest

from conftest import OBJ, ROOT

TARGETS = sorted(os.path.basename(p)[:-len("_fuzz.c")]
                 for p in glob.glob(os.path.join(ROOT, "fuzz", "*_fuzz.c")))


@pytest.fixture(scope="module")
def built():
    """make fuzz-build in this object directory (quick when up to date)."""
    assert shutil.which(os.environ.get("FUZZ_CC", "clang")), \
        "clang is missing: run make deps"
    obj = os.environ.get("SPLITMX_OBJ", "obj")
    r = subprocess.run(["make", "-s", "OBJ=" + obj, "fuzz-build"], cwd=ROOT,
                       capture_output=True, text=True, errors="replace",
                       timeout=1800)
    assert r.returncode == 0, "make fuzz-build failed:\n" + \
        r.stdout[-3000:] + r.stderr[-3000:]
    return os.path.join(OBJ, "fuzz")


def test_every_target_has_seeds():
    assert TARGETS, "no fuzz targets in fuzz/"
    for name in TARGETS:
        seeds = glob.glob(os.path.join(ROOT, "fuzz", "corpus", name, "*"))
        assert seeds, "fuzz/corpus/%s/ has no seeds" % name


@pytest.mark.parametrize("name", TARGETS)
def test_corpus_replays(built, name):
    binary = os.path.join(built, name + "_fuzz")
    assert os.path.exists(binary), "not built: " + binary
    seeds = sorted(glob.glob(os.path.join(ROOT, "fuzz", "corpus", name, "*")))
    if not seeds:
        pytest.fail("fuzz/corpus/%s/ has no seeds" % name)
    env = dict(os.environ)
    env.pop("FUZZ_SHOW", None)
    # Leaks count here, also under make test-asan (which turns them off
    # for the daemon).
    env["ASAN_OPTIONS"] = "detect_leaks=1"
    env["UBSAN_OPTIONS"] = "print_stacktrace=1"
    r = subprocess.run([binary, "-timeout=60", "-rss_limit_mb=4096"] + seeds,
                       cwd=ROOT, capture_output=True, text=True,
                       errors="replace", timeout=900, env=env)
    assert r.returncode == 0, "%s failed on its corpus:\n%s" % (
        name, (r.stdout + r.stderr)[-6000:])
    ran = r.stderr.count("Executed ")
    assert ran == len(seeds), "%d of %d seeds ran:\n%s" % (
        ran, len(seeds), r.stderr[-3000:])
