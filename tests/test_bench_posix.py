"""The pjdfstest runner's reading of a ``prove -v`` run (benchmarks/posix.py), without
a mount: failures per file and per folder, tests a dead script never ran, TODOs not
counted, and each failure's cause named by what was tried and what came back."""

from __future__ import annotations

from benchmarks import posix

TAP = """\
/root/.cache/dlfs/pjdfstest/src/tests/chmod/00.t ..........
1..5
ok 1
not ok 2 - tried 'chmod pjdfstest_ab 0755', expected 0, got EPERM
not ok 3 - tried 'stat pjdfstest_ab mode', expected 0755, got 0644
ok 4
not ok 5 # TODO broken on this fs
Failed 2/5 subtests
/root/.cache/dlfs/pjdfstest/src/tests/chmod/01.t ..........
1..2
ok 1
ok 2
ok
/root/.cache/dlfs/pjdfstest/src/tests/rename/00.t ..........
1..4
not ok 1 - tried '-u 65534 -g 65534 rename a b', expected 0, got EACCES
not ok 2
Dubious, test returned 1 (wstat 256, 0x100)
Files=3, Tests=11,  1 wallclock secs
Result: FAIL
"""


def test_failures_per_file_and_folder():
    files = posix.parse(TAP)
    assert [f.name for f in files] == ["chmod/00.t", "chmod/01.t", "rename/00.t"]
    out = posix.summarize(files)
    assert (out["files"], out["tests"], out["failures"], out["failed_files"]) == (3, 11, 6, 2)
    assert out["per_file"] == {"chmod/00.t": [2, 5], "rename/00.t": [4, 4]}
    assert out["per_group"] == {"chmod": [2, 7], "rename": [4, 4]}


def test_causes_name_the_call_and_the_answer():
    out = posix.summarize(posix.parse(TAP))
    assert out["causes"] == {
        "chmod: expected 0 got EPERM": 1,
        "stat mode: expected <v> got <v>": 1,
        "rename: expected 0 got EACCES": 1,
        "(no message: a test_check or a dead script)": 1,
        "(not run: rename script stopped early)": 2,
    }
    assert out["first_causes"] == {
        "chmod": {"chmod: expected 0 got EPERM": 1},
        "rename": {"rename: expected 0 got EACCES": 1},
    }
