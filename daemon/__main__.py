"""``python -m dlfsd`` runs the dlfs FUSE daemon."""

from dlfsd.main import main

main()
