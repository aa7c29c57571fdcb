"""``python -m dlfs`` runs the ``dlfs`` command."""

from dlfs.cli import main

main()
