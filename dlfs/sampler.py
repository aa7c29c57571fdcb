"""A sampler that hands each epoch's reading order to the mount before the epoch starts.

:class:`PlannedSampler` wraps any sampler (anything iterable that yields dataset
indices, or lists of them: a PyTorch ``RandomSampler``, ``DistributedSampler``,
``BatchSampler``, or a plain list). Each time an epoch starts (``iter(sampler)``), it
draws the whole epoch's order from the wrapped sampler, gives the mount the files in
that order (:func:`dlfs.plan.prefetch`), and then yields the same indices. The mount's
daemon warms the files ahead of the loader's reads (:mod:`dlfs.plan`).

No torch here: a ``DataLoader`` only needs ``__iter__`` and ``__len__`` of a sampler.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from dlfs.plan import Plan, mountpoint_of, prefetch


class PlannedSampler:
    """Yields what ``sampler`` yields, after giving the mount at ``mountpoint`` (a
    path, or a ref mounted once) the files ``paths[i]`` in that order.

    ``paths`` holds the file of each dataset index (relative to the mount root, or
    absolute under it), e.g. ``[p for p, _label in image_folder.samples]``.
    ``set_epoch`` is passed on to the wrapped sampler (``DistributedSampler``).
    """

    def __init__(
        self,
        sampler: Iterable[Any],
        paths: Sequence[str | os.PathLike[str]],
        mountpoint: str | os.PathLike[str],
        *,
        home: str | os.PathLike[str] | None = None,
    ) -> None:
        self.sampler = sampler
        self.paths = paths
        self.mountpoint: Path = mountpoint_of(mountpoint, home)
        self.plan: Plan | None = None
        """The plan of the epoch under way (None before the first)."""

    def __iter__(self) -> Iterator[Any]:
        order = list(self.sampler)
        files: list[str | os.PathLike[str]] = []
        for drawn in order:
            if isinstance(drawn, list | tuple):  # a batch sampler
                files.extend(self.paths[i] for i in drawn)
            else:
                files.append(self.paths[drawn])
        self.plan = prefetch(self.mountpoint, files)
        return iter(order)

    def __len__(self) -> int:
        return len(self.sampler)  # type: ignore[arg-type]

    def set_epoch(self, epoch: int) -> None:
        """Tell the wrapped sampler which epoch comes (if it wants to know)."""
        set_epoch = getattr(self.sampler, "set_epoch", None)
        if set_epoch is not None:
            set_epoch(epoch)
