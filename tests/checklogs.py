"""A pytest plugin (after S3QL's ``pytest_checklogs``; ``tests/conftest.py`` imports
its hooks): a test during which dlfs logged an unexpected ERROR or CRITICAL record
fails, and the failure shows the record.

Two sources are checked:

- the library, in the test process: every record of the ``dlfs`` and ``dlfsd``
  loggers (and their children) at ERROR or above, during setup, call and teardown;
- the daemons started by the mount fixtures (:class:`fsutil.Mounter`): their log file
  is scanned when they are unmounted (:func:`daemon_log_problems`), for ERROR and
  CRITICAL lines and for any traceback.

A test that provokes errors on purpose says which, with one or more regular
expressions searched in the message::

    @pytest.mark.expect_log("is unreadable", "checksum mismatch")
    def test_a_corrupt_blob_is_eio(...): ...

The marker also applies to a module (``pytestmark``) or a class, and to the daemons a
test's mount fixtures started. An expected pattern that never shows up is not an
error: the test's own assertions say what must happen.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Generator, Iterable
from pathlib import Path

import pytest

MARKER = "expect_log"
LOGGERS = ("dlfs", "dlfsd")
"""The loggers of the library and of the daemon's modules (some tests drive the
daemon's operations in this process)."""

_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \d+ (?P<level>[A-Z]+) (?P<name>\S+): (?P<msg>.*)$"
)
"""One record's first line in a daemon's log (``daemon/main.py`` ``setup_logging``)."""


def expected_patterns(node: pytest.Item | pytest.Collector) -> list[str]:
    """Every pattern the ``expect_log`` markers of ``node`` (and its parents) allow."""
    return [str(p) for mark in node.iter_markers(MARKER) for p in mark.args]


def allowed(message: str, patterns: Iterable[str]) -> bool:
    """True if ``message`` matches one of ``patterns`` (``re.search``)."""
    return any(re.search(p, message) for p in patterns)


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _describe(record: logging.LogRecord) -> str:
    text = f"{record.levelname} {record.name}: {record.getMessage()}"
    if record.exc_info and record.exc_info[1] is not None:
        text += f"\n    ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
    return text


def _checked(item: pytest.Item, when: str) -> Generator[None, object, object]:
    collector = _Collector()
    loggers = [logging.getLogger(name) for name in LOGGERS]
    for logger in loggers:
        logger.addHandler(collector)
    try:
        result = yield  # a failure of the test itself propagates as it is
    finally:
        for logger in loggers:
            logger.removeHandler(collector)
    patterns = expected_patterns(item)
    bad = [r for r in collector.records if not allowed(r.getMessage(), patterns)]
    if bad:
        shown = "\n".join(_describe(r) for r in bad)
        hint = f"mark the test @pytest.mark.{MARKER}('pattern') if it is expected"
        pytest.fail(f"dlfs logged {len(bad)} unexpected error(s) during {when}:\n{shown}\n({hint})")
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _checked(item, "setup"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _checked(item, "call"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _checked(item, "teardown"))


def daemon_log_problems(path: Path, patterns: Iterable[str] = ()) -> list[str]:
    """The records of a daemon's log file that fail a test: ERROR and CRITICAL
    records, and any record with a traceback, whose text (its lines and continuation
    lines) matches none of ``patterns``."""
    if not path.exists():
        return []
    patterns = list(patterns)
    records: list[tuple[str, str, list[str]]] = []  # level, first line's message, lines
    for line in path.read_text(errors="replace").splitlines():
        m = _LINE.match(line)
        if m is not None:
            records.append((m["level"], m["msg"], [line]))
        elif records:
            records[-1][2].append(line)
        else:  # output before the first record (stderr of the daemon)
            records.append(("", line, [line]))
    problems = []
    for level, _message, lines in records:
        text = "\n".join(lines)
        if (level in ("ERROR", "CRITICAL") or "Traceback" in text) and not allowed(text, patterns):
            problems.append(text)
    return problems
