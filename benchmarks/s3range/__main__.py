"""``python -m benchmarks.s3range ROOT ...``: see the package docstring."""

from benchmarks.s3range import main

main()
