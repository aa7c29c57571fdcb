"""The argument checks of the public Python API, read from its type hints.

Every bad input to the API raises a :class:`dlfs.DlfsError` subclass, never a bare
``TypeError`` or ``AttributeError`` from deep inside: :func:`checked` wraps each public
method of a class so that an argument whose type does not fit the method's annotation
is refused up front with :class:`InvalidInput` naming the method and the argument,
before anything is read or changed. Values are checked further down (names, JSON,
paths) by the functions that own their rules; this module only checks shapes.

Understood annotations: classes (``str``, ``int``, ``bool``, ``Path``, ``os.PathLike``,
handles...), ``X | Y`` / ``Optional``, ``list[X]`` and ``Sequence[X]`` (any sequence
but a ``str`` or ``bytes``, never a list of names here), ``tuple``, ``dict`` /
``Mapping``, ``Callable``, ``Any``;
anything else is not checked. ``bool`` is not an ``int`` and ``int`` is a ``float``.
A parameter whose annotation holds ``Any`` inside (``list[Any]``, ``dict[str, Any]``:
JSON values) is left to :mod:`dlfs.jsonvalues`, which says more precisely what is wrong.
"""

from __future__ import annotations

import collections.abc
import functools
import inspect
import sys
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

from dlfs.errors import InvalidInput

T = TypeVar("T")
_MISSING = object()


def _fits(value: Any, hint: Any) -> bool:
    if hint is Any or hint is object:
        return True
    if hint is None or hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if origin is None:
        return not isinstance(hint, type) or isinstance(value, hint)
    if origin is collections.abc.Callable:
        return callable(value)
    if origin is list:
        origin = collections.abc.Sequence  # a tuple of paths is as good as a list
    if not isinstance(origin, type) or not isinstance(value, origin):
        return False
    return _fits_items(value, origin, args)


def _fits_items(value: Any, origin: type, args: tuple[Any, ...]) -> bool:
    if origin in (list, collections.abc.Sequence, set, frozenset, collections.abc.Iterable):
        if isinstance(value, str | bytes) and args:
            return False
        return not args or all(_fits(v, args[0]) for v in value)
    if origin in (dict, collections.abc.Mapping) and len(args) == 2:
        return all(_fits(k, args[0]) for k in value)
    if origin is tuple and args and args[-1] is not Ellipsis:
        return len(value) == len(args) and all(
            _fits(v, a) for v, a in zip(value, args, strict=True)
        )
    return True


def _holds_any(hint: Any) -> bool:
    """Whether ``Any`` is inside ``hint`` (``list[Any]``, ``dict[str, Any] | None``)."""
    return any(a is Any or _holds_any(a) for a in typing.get_args(hint))


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """The evaluable parameter annotations of ``fn`` (names only imported for type
    checkers are left out: those parameters are not checked)."""
    module = sys.modules[fn.__module__].__dict__
    out = {}
    for name, text in fn.__annotations__.items():
        if name == "return":
            continue
        try:
            out[name] = eval(text, module) if isinstance(text, str) else text
        except Exception:  # a TYPE_CHECKING-only name: not checked
            continue
        if _holds_any(out[name]):
            del out[name]  # JSON values: checked by dlfs.jsonvalues, with better words
    return out


def _describe(hint: Any) -> str:
    text = getattr(hint, "__name__", None) if typing.get_origin(hint) is None else None
    return text or str(hint).replace("typing.", "").replace("collections.abc.", "")


def check_call(fn: Callable[..., T]) -> Callable[..., T]:
    """``fn`` with its arguments checked against its annotations (module doc)."""
    signature = inspect.signature(fn)
    hints: dict[str, Any] | None = None

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        nonlocal hints
        if hints is None:
            hints = _hints(fn)
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidInput(f"{fn.__qualname__}: {exc}") from None
        for name, value in bound.arguments.items():
            hint = hints.get(name, _MISSING)
            if hint is _MISSING or signature.parameters[name].kind in (
                inspect.Parameter.VAR_POSITIONAL,
                inspect.Parameter.VAR_KEYWORD,
            ):
                continue
            if not _fits(value, hint):
                raise InvalidInput(
                    f"{fn.__qualname__}: {name} must be {_describe(hint)},"
                    f" got {type(value).__name__} {_short(value)}"
                )
        return fn(*args, **kwargs)

    return wrapper


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "..."


def checked(cls: type[T]) -> type[T]:
    """Check the arguments of every public method of ``cls`` (module doc)."""
    for name, attr in list(vars(cls).items()):
        if name.startswith("_") or not inspect.isfunction(attr):
            continue
        setattr(cls, name, check_call(attr))
    return cls
