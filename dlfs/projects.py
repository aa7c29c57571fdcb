"""Projects: namespaces of datasets, each with an owner, a Unix group and a read-only flag.

A dataset named ``PROJECT/NAME`` is in ``PROJECT``; a bare name is in the ``default``
project, which every catalog has (the migration to schema 5 made it), so catalogs made
before projects keep working unchanged. Refs name the dataset the same way
(``vision/cats@v1``); the catalog mount shows ``MNT/<project>/<dataset>/...`` and the
default project's datasets at ``MNT/<dataset>/...``, which is why a project and a
dataset of the default project cannot share a name.

Access rules: a project with a group is presented to the kernel through a
:class:`dlfs.access.AccessRule` (group members read; for a draft mounted read-write,
write; no one else). A read-only project takes no new dataset, draft, publish, edit of
a draft or delete until it is made writable again.

Every function runs inside the caller's transaction and raises a
:class:`dlfs.errors.DlfsError` before changing anything when the input is bad.
"""

from __future__ import annotations

import grp
import os
import pwd
from datetime import UTC, datetime
from typing import Any

from dlfs.access import AccessRule
from dlfs.catalog import CatalogDB, Row
from dlfs.errors import AlreadyExists, Conflict, InvalidInput, NotEmpty, NotFound, ReadOnly
from dlfs.names import DEFAULT_PROJECT, check_dataset_name, check_project_name, project_of


def project_row(db: CatalogDB, name: str) -> Row:
    """The project named ``name``; :class:`NotFound` names the known ones."""
    row = db.project_get(name)
    if row is None:
        known = ", ".join(r["name"] for r in db.projects()[:10])
        raise NotFound(f"no project named {name!r} (projects: {known})")
    return row


def group_id(group: str) -> int:
    """The gid of a Unix group given by name or number; :class:`InvalidInput` if the
    system has no such group."""
    try:
        return (
            grp.getgrnam(group).gr_gid if not group.isdigit() else grp.getgrgid(int(group)).gr_gid
        )
    except (KeyError, OverflowError):
        raise InvalidInput(f"no Unix group {group!r} on this machine") from None


def create_project(
    db: CatalogDB, name: str, group: str | None = None, description: str = ""
) -> Row:
    """Create a project owned by the calling user, with ``group`` (a name or gid)."""
    check_project_name(name)
    if len(description) > 4096 or "\0" in description:
        raise InvalidInput("invalid project description: at most 4096 characters, no NUL")
    gid = None if group is None else group_id(group)
    if db.project_get(name) is not None:
        raise AlreadyExists(f"project {name!r} already exists")
    if db.dataset_by_name(name) is not None:
        raise AlreadyExists(
            f"a dataset of the default project is named {name!r}: the catalog mount shows"
            " both at its top level, choose another project name"
        )
    db.project_insert(name, os.getuid(), gid, description)
    return project_row(db, name)


def set_project(
    db: CatalogDB,
    name: str,
    read_only: bool | None = None,
    group: str | None = None,
    no_group: bool = False,
) -> Row:
    """Mark a project read-only or writable, give it a group or take its group away."""
    project_row(db, name)
    if group is not None and no_group:
        raise InvalidInput("give either --group or --no-group, not both")
    fields: dict[str, Any] = {}
    if read_only is not None:
        fields["read_only"] = int(read_only)
    if group is not None:
        fields["grp"] = group_id(group)
    if no_group:
        fields["grp"] = None
    if not fields:
        raise InvalidInput("nothing to set: give --read-only, --writable, --group or --no-group")
    db.project_update(name, **fields)
    return project_row(db, name)


def deletable(db: CatalogDB, name: str, force: bool = False) -> list[str]:
    """The datasets that deleting project ``name`` deletes with it (the caller deletes
    them, then calls :func:`forget`). Refused for the default project, for a
    read-only project and, without ``force``, for a project that has datasets."""
    row = project_row(db, name)
    if name == DEFAULT_PROJECT:
        raise InvalidInput("the default project cannot be deleted")
    if row["read_only"]:
        raise ReadOnly(f"project {name!r} is read-only: 'dlfs project set {name} --writable' first")
    names = [d["name"] for d in db.datasets_in(name)]
    if names and not force:
        raise NotEmpty(
            f"project {name!r} has {len(names)} dataset(s) ({', '.join(names[:5])});"
            " add --force to delete them with it"
        )
    return names


def forget(db: CatalogDB, name: str) -> None:
    """Delete the row of project ``name``, whose datasets are gone."""
    db.project_delete(name)


def is_read_only(db: CatalogDB, project: str) -> bool:
    """True when ``project`` is marked read-only."""
    row = db.project_get(project)
    return row is not None and bool(row["read_only"])


def check_writable(db: CatalogDB, dataset: str) -> None:
    """Raise :class:`ReadOnly` when the project of dataset ``dataset`` is read-only."""
    project = project_of(dataset)
    if is_read_only(db, project):
        raise ReadOnly(
            f"project {project!r} is read-only: no new drafts, publishes, edits or deletes"
            f" in it ('dlfs project set {project} --writable' clears it)"
        )


def admit(db: CatalogDB, name: str, make_project: bool = False) -> str:
    """Check that a new dataset may be called ``name``; return its catalog name.

    Its project must exist (``make_project``: a missing one is created, as a pull does)
    and not be read-only; a dataset of the default project may not take a project's
    name.
    """
    name = check_dataset_name(name)
    project = project_of(name)
    if db.project_get(project) is None:
        if not make_project:
            raise NotFound(
                f"no project named {project!r}: create it first ('dlfs project create {project}')"
            )
        db.project_insert(project, os.getuid(), None, "")
    check_writable(db, name)
    if project == DEFAULT_PROJECT and db.project_get(name) is not None:
        raise Conflict(
            f"{name!r} is a project: name a dataset in it {name}/NAME, or choose another name"
        )
    return name


def rule_of(db: CatalogDB, project: str, writable: bool = False) -> AccessRule | None:
    """The access rule of a project's mounts, None when it has no group."""
    row = db.project_get(project)
    if row is None or row["grp"] is None:
        return None
    return AccessRule(int(row["owner"]), int(row["grp"]), writable)


def project_info(db: CatalogDB, row: Row) -> dict[str, Any]:
    """A JSON-ready description of a project."""
    owner, gid = int(row["owner"]), row["grp"]
    return {
        "name": row["name"],
        "owner": _user_name(owner),
        "uid": owner,
        "group": None if gid is None else _group_name(int(gid)),
        "gid": gid,
        "read_only": bool(row["read_only"]),
        "description": row["description"],
        "datasets": [d["name"] for d in db.datasets_in(_own(row["name"]))],
        "created_at": datetime.fromtimestamp(row["created_at"], UTC)
        .isoformat(timespec="seconds")
        .replace("+00:00", "Z"),
    }


def _own(project: str) -> str | None:
    return None if project == DEFAULT_PROJECT else project


def datasets_of(db: CatalogDB, project: str) -> list[Row]:
    """The dataset rows of a project, by name."""
    project_row(db, project)
    return db.datasets_in(_own(project))


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)
