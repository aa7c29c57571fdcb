# Two commands do everything on a fresh Debian machine (as root):
#   make demo   -- bootstrap, then the main job on a throwaway catalog
#   make test   -- bootstrap, then the whole test suite
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: bootstrap demo test lint bench clean lock

bootstrap:
	@bash scripts/bootstrap.sh

demo: bootstrap
	@bash scripts/demo.sh

# The suite runs on every core (pytest-xdist): most of its time is spent waiting for
# daemons, mounts and subprocesses, which overlap well even on 2 cores.
test: bootstrap
	$(PY) -m pytest -q -n auto

lint: bootstrap
	$(VENV)/bin/ruff check dlfs daemon tests benchmarks
	$(VENV)/bin/ruff format --check dlfs daemon tests benchmarks
	$(VENV)/bin/mypy

# The documentation site (site/), API reference from the docstrings; strict: any
# warning fails. Installs the docs extra (mkdocs, mkdocstrings) once.
.PHONY: docs
docs:
	@DLFS_EXTRAS=dev,docs bash scripts/bootstrap.sh
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

bench:
	@DLFS_EXTRA_DEBS="bindfs rclone s3fs" bash scripts/bootstrap.sh
	$(PY) -m benchmarks $(BENCH_ARGS)

# Re-resolve requirements.lock to the newest versions pyproject.toml allows (see
# scripts/lock.sh); the bootstrap installs from it.
lock:
	@bash scripts/lock.sh

# pjdfstest inside a draft mount (and a plain folder for reference), as root; not part
# of `make test`. POSIX_TARGETS=dlfs,plain,bindfs picks targets, POSIX_TESTS="chmod" tests.
POSIX_TARGETS ?= dlfs,plain
.PHONY: posix
posix: bootstrap
	DLFS_POSIX_TARGETS=$(POSIX_TARGETS) DLFS_POSIX_TESTS="$(POSIX_TESTS)" \
		$(PY) -m benchmarks --only posix

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
