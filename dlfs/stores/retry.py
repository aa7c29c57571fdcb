"""Bounded retries with timeouts for remote stores.

Remote stores fail in two ways: *temporarily* (a refused or reset connection, a
timeout, an HTTP 500 or 503, a body cut short or with a flipped byte) and *for good*
(no such bucket, access denied, an object that changed underneath a linked item).
The raw store raises :class:`dlfs.errors.TemporaryFailure` or
:class:`dlfs.errors.BadBody` for the first kind, any other
:class:`dlfs.errors.DlfsError` for the second; :func:`is_temp_failure`
tells them apart and :class:`RetryPolicy` retries only the first, as S3QL's
``retry`` decorator does.

The budget is time, not attempts: a call gives up once :attr:`RetryPolicy.timeout`
seconds (30 by default) have passed since it started, so an unreachable endpoint is
reported as :class:`dlfs.errors.Unavailable` within that time, never a hang. A new
attempt is only started when it can finish (``attempt_timeout``) before the deadline;
each attempt is itself bounded by ``attempt_timeout`` (socket timeouts plus a deadline
on reading the body, see :mod:`dlfs.stores.s3`).

After a call has given up, the endpoint is presumed down for ``cooldown`` seconds:
calls in that window make a single attempt, so a reader walking many uncached files of
a dead endpoint gets its errors at once instead of one timeout per file, while what
is cached keeps being served by the layer above.

    DlfsError                  (all in dlfs.errors)
    ├── Unavailable
    │   └── TemporaryFailure   retried; after the deadline becomes Unavailable
    └── Corrupt
        └── BadBody            retried (transport damage); at the end stays Corrupt
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from dlfs.errors import BadBody, Corrupt, TemporaryFailure, Unavailable

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


def is_temp_failure(exc: BaseException) -> bool:
    """True for failures worth another attempt."""
    return isinstance(exc, TemporaryFailure | BadBody)


@dataclass
class RetryPolicy:
    """How long and how often a remote call is tried.

    ``timeout``: seconds after which a call gives up (the ``Unavailable`` deadline).
    ``attempt_timeout``: the bound of one attempt (connect, each read, whole body).
    ``backoff``/``max_backoff``: the first and the largest pause between attempts
    (doubling, with jitter). ``cooldown``: after a call gave up, seconds during which
    calls make one attempt only.
    """

    timeout: float = 30.0
    attempt_timeout: float = 10.0
    backoff: float = 0.05
    max_backoff: float = 2.0
    cooldown: float = 5.0
    _down_until: float = field(default=0.0, init=False, repr=False, compare=False)
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ValueError("a retry timeout must be positive")
        self.attempt_timeout = min(self.attempt_timeout, self.timeout)

    def call(self, what: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn`` until it succeeds, fails for good, or the deadline passes.

        ``what`` names the operation in the final error message. Raises the last
        error: :class:`Unavailable` for temporary failures, :class:`Corrupt` for bytes
        that kept failing their check, or the permanent error as it was.
        """
        tries = _Tries(self, what)
        while True:
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                time.sleep(tries.failed(exc))
                continue
            tries.succeeded()
            return result

    def _give_up(self) -> None:
        with self._lock:
            self._down_until = time.monotonic() + self.cooldown

    give_up = _give_up
    """A call gave up: presume the endpoint down for ``cooldown`` seconds."""

    def presumed_down(self) -> bool:
        """True while calls make a single attempt (see ``cooldown``)."""
        return time.monotonic() < self._down_until

    def came_back(self) -> None:
        """A call succeeded after a failure: the endpoint is up again."""
        with self._lock:
            self._down_until = 0.0


async def call_async(policy: RetryPolicy, attempt: Callable[[], Awaitable[T]], what: str) -> T:
    """What :meth:`RetryPolicy.call` does, on an asyncio loop instead of a thread:
    ``attempt`` (each try bounded by ``attempt_timeout``) until it succeeds, fails
    for good, or the deadline passes; the same backoff, cooldown and final errors."""
    import asyncio  # only the event-loop paths (dlfs.stores.s3loop, s3send) need it

    tries = _Tries(policy, what)
    while True:
        try:
            async with asyncio.timeout(policy.attempt_timeout):
                result = await attempt()
        except TimeoutError:
            await asyncio.sleep(tries.failed(TemporaryFailure(f"{what}: no answer in time")))
            continue
        except Exception as exc:
            await asyncio.sleep(tries.failed(exc))
            continue
        tries.succeeded()
        return result


class _Tries:
    """The attempts of one call: the deadline, the backoff and the cooldown, shared by
    :meth:`RetryPolicy.call` and :func:`call_async` (which only differ in how they
    wait)."""

    def __init__(self, policy: RetryPolicy, what: str) -> None:
        self.policy, self.what = policy, what
        self.start = time.monotonic()
        self.deadline = self.start + policy.timeout
        self.pause = policy.backoff
        self.single = policy.presumed_down()
        self.count = 0

    def failed(self, exc: Exception) -> float:
        """An attempt raised ``exc``: the seconds to wait before the next one; raises
        ``exc`` itself when it is not temporary, the final error when no attempt is
        left (and presumes the endpoint down unless the bytes were bad)."""
        self.count += 1
        if not is_temp_failure(exc):
            raise exc
        policy, now = self.policy, time.monotonic()
        wait = min(self.pause, policy.max_backoff) * (0.5 + random.random() / 2)
        if self.single or now + wait + policy.attempt_timeout > self.deadline:
            if not isinstance(exc, BadBody):
                policy.give_up()
            raise _final(exc, self.what, self.count, now - self.start) from exc
        log.debug("%s: attempt %d failed (%s), retrying", self.what, self.count, exc)
        self.pause *= 2
        return wait

    def succeeded(self) -> None:
        """An attempt succeeded: after a failure, the endpoint is up again."""
        if self.count or self.single:
            self.policy.came_back()


def final_error(exc: Exception, what: str, attempts: int, elapsed: float) -> Exception:
    """The error a call that gave up raises (``Corrupt`` or ``Unavailable``)."""
    return _final(exc, what, attempts, elapsed)


def _final(exc: Exception, what: str, attempts: int, elapsed: float) -> Exception:
    tries = f"{attempts} attempt{'s' if attempts > 1 else ''} in {elapsed:.1f}s"
    if isinstance(exc, BadBody):
        return Corrupt(f"{what}: {exc} ({tries})")
    return Unavailable(f"{what}: {exc} ({tries})")


def retrying(what: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorate a method so each call runs under ``self.retry`` (a :class:`RetryPolicy`).

    ``what`` is a format string over the call's positional arguments and ``self``,
    e.g. ``"reading blob {0} from {self.url}"``.
    """

    def decorate(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> T:
            policy: RetryPolicy = self.retry
            return policy.call(what.format(*args, self=self), fn, self, *args, **kwargs)

        return wrapper

    return decorate
