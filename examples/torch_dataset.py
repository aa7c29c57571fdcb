"""Train on a dlfs version with PyTorch: plain file paths, a multi-worker DataLoader.

The version is mounted with :func:`dlfs.mount` for the length of the run, so the
``Dataset`` below knows nothing about dlfs: it lists files under a folder and reads
them with ``open()``, as it would read any local folder. ``DataLoader`` workers are
separate processes; each reads through the same mount, and the kernel's page cache
(the mount keeps it across opens: published files never change) serves every byte
read twice.

Run it on a version of your own catalog::

    python examples/torch_dataset.py cats@v1 --folder train --workers 4

or on a small generated dataset, made first in a temporary catalog::

    python examples/torch_dataset.py --demo

Samples are the files under ``--folder``; a file's label is the name of the folder it
is in (``train/cat/001.jpg`` is a ``cat``), as torchvision's ``ImageFolder`` does.
Each file becomes a 256-bin histogram of its bytes: a stand-in for decoding an image,
so the example needs nothing beyond torch.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

import dlfs


class FolderDataset(Dataset[tuple[torch.Tensor, int]]):
    """The files under ``root`` as ``(features, label)``; the label is the index of
    the file's parent folder name among all of them."""

    def __init__(self, root: Path) -> None:
        self.paths = sorted(p for p in root.rglob("*") if p.is_file())
        self.classes = sorted({p.parent.name for p in self.paths})
        self.index = {name: i for i, name in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path = self.paths[i]
        with open(path, "rb") as f:  # a plain read from the mount
            data = f.read()
        counts = torch.bincount(torch.frombuffer(bytearray(data), dtype=torch.uint8), minlength=256)
        features = counts.float() / max(1, len(data))
        return features, self.index[path.parent.name]


def train(root: Path, workers: int, batch_size: int, epochs: int) -> dict[str, float]:
    """A linear classifier trained for ``epochs`` on the files under ``root``."""
    data = FolderDataset(root)
    if len(data) == 0:
        raise SystemExit(f"no files under {root}")
    loader = DataLoader(data, batch_size=batch_size, shuffle=True, num_workers=workers)
    model = torch.nn.Linear(256, len(data.classes))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    seen = 0
    loss = torch.tensor(0.0)
    for _ in range(epochs):
        for features, labels in loader:
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(features), labels)
            loss.backward()
            optimizer.step()
            seen += len(labels)
    with torch.no_grad():
        every = torch.stack([data[i][0] for i in range(len(data))])
        truth = torch.tensor([data[i][1] for i in range(len(data))])
        accuracy = (model(every).argmax(1) == truth).float().mean().item()
    return {
        "files": len(data),
        "classes": len(data.classes),
        "samples": seen,
        "loss": loss.item(),
        "accuracy": accuracy,
    }


def make_demo(home: Path) -> str:
    """A dataset ``shapes`` with ``train/<class>/`` folders of generated files whose
    byte statistics differ by class; published; returns its ref."""
    rnd = random.Random(0)
    with dlfs.Catalog(home) as cat:
        ds = cat.create_dataset("shapes", description="generated demo data")
        draft = ds.draft()
        for label, alphabet in (("circle", b"abc"), ("square", b"xyz"), ("line", b"-|")):
            for i in range(24):
                data = bytes(rnd.choice(alphabet) for _ in range(rnd.randint(200, 2000)))
                draft.add(data, to=f"train/{label}/{i:03d}.bin", metadata={"label": label})
        return ds.publish(tags=["demo"]).ref


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ref", nargs="?", help="the version to train on, e.g. cats@v1")
    parser.add_argument("--home", help="the catalog (default: $DLFS_HOME)")
    parser.add_argument("--folder", default="train", help="the folder of samples")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--demo", action="store_true", help="train on generated data")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dlfs-demo-") as scratch:
        home, ref = args.home, args.ref
        if args.demo:
            home = home or str(Path(scratch) / "home")
            ref = make_demo(Path(home))
        if ref is None:
            parser.error("give a REF, or --demo")
        start = time.monotonic()
        with dlfs.mount(ref, home=home) as root:
            stats = train(root / args.folder, args.workers, args.batch_size, args.epochs)
        took = time.monotonic() - start
    print(
        f"{ref}: {stats['files']} files in {stats['classes']} classes,"
        f" {stats['samples']} samples read by {args.workers} workers in {took:.1f} s;"
        f" loss {stats['loss']:.3f}, accuracy {stats['accuracy']:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
