"""The draft view without a kernel: :class:`dlfs.draftview.DraftView` driven by the
state machine of :mod:`tests.draftmodel` against its reference model (the same rules
run through a real mount, in a smaller run, in ``tests/fs/test_draft_model.py``)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings

from dlfs.home import Home
from dlfs.mountviews import open_mount_view
from tests.draftmodel import DraftMachine, Driver, ViewDriver, make_dataset


class DraftViewMachine(DraftMachine):
    """The rules on a :class:`DraftView` opened as a mount would open it."""

    def open(self) -> Driver:
        self.tmp = Path(tempfile.mkdtemp(prefix="dlfs-draftview-"))
        self.home = self.tmp / "home"
        make_dataset(self.home, self.dataset)
        self.view: Any = open_mount_view(Home.at(self.home), f"{self.dataset}@draft")
        return ViewDriver(self.view)

    def close(self) -> None:
        self.view.close()

    def cleanup(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


DraftViewMachine.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestDraftView = DraftViewMachine.TestCase
