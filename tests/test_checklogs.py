"""The log check itself (:mod:`tests.checklogs`): what fails a test, what a test may
declare."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.checklogs import daemon_log_problems

LOG = """\
2026-01-02 03:04:05,678 123 INFO dlfsd: mounted cats@x at /mnt (read-only)
2026-01-02 03:04:06,000 123 ERROR dlfs.view: blob ab (item cd) is unreadable: its bytes do not match
2026-01-02 03:04:07,000 123 WARNING dlfs.stores.s3: retrying
Traceback (most recent call last):
  File "x.py", line 1, in <module>
ValueError: boom
2026-01-02 03:04:08,000 123 CRITICAL dlfsd: the daemon failed
"""


@pytest.mark.expect_log("is unreadable")
def test_a_declared_error_passes() -> None:
    logging.getLogger("dlfs.view").error("blob %s is unreadable: %s", "ab", "gone")


def test_warnings_and_other_loggers_pass() -> None:
    logging.getLogger("dlfs.stores.s3").warning("retrying")
    logging.getLogger("somebody.else").error("not dlfs")


def test_the_daemon_log_shows_each_unexpected_record(tmp_path: Path) -> None:
    log = tmp_path / "mount.log"
    log.write_text(LOG)
    problems = daemon_log_problems(log)
    assert [p.splitlines()[0].split(" ", 4)[3] for p in problems] == [
        "ERROR",
        "WARNING",  # with a traceback
        "CRITICAL",
    ]
    assert "ValueError: boom" in problems[1]
    assert daemon_log_problems(log, ["unreadable", "boom", "failed"]) == []
    assert daemon_log_problems(tmp_path / "none.log") == []
