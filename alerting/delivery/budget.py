"""The `notify()` time budget, and `DeliveryError` (a failed send, with when to retry it and
whether retrying can help), which the Slack and the e-mail senders share.

The budget holds whatever the network does. Each Slack/SMTP call gets the time that is left,
less `SEND_MARGIN_S`, as its socket timeout (`time_left`), and a retry is made only when it fits
(`within`): a server that does not answer times the call out just before the deadline, and the
row goes back to pending. What a socket timeout cannot bound (a DNS lookup, a server that
trickles its answer a byte at a time, a slow TLS handshake, a slow Airflow connection lookup)
is bounded by `finish_by`: the send runs in a worker thread and `notify()` stops waiting for it
at the deadline. That worker still owns the row it claimed and finishes it (sent, or pending
again) when its call returns; if the process ends first, the row stays 'sending' and
`redeliver()` claims it again after the outbox's lease. Below `MIN_ATTEMPT_S` left, no delivery
is started (the row stays pending)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

# Below this much time left in a notify() budget, a delivery is not started (left pending).
MIN_ATTEMPT_S = 0.25
# A call's own timeouts end this long before the deadline, so a timed-out row is pending again
# (not still 'sending') when notify() returns.
SEND_MARGIN_S = 0.1


class DeliveryError(Exception):
    def __init__(self, message: str, *, retry_after_s: float | None = None, permanent: bool = False):
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.permanent = permanent


def time_left(deadline: float | None, default: float) -> float:
    """The timeout for one call: the configured one, or less when the notify() budget ends sooner."""
    if deadline is None:
        return default
    return max(0.05, min(default, deadline - SEND_MARGIN_S - time.monotonic()))


def within(deadline: float | None, needed_s: float) -> bool:
    return deadline is None or time.monotonic() + needed_s < deadline - SEND_MARGIN_S


def spent(deadline: float | None, needed_s: float = 0.0) -> bool:
    """Less than `needed_s` is left before the deadline (never, without one)."""
    return deadline is not None and deadline - time.monotonic() < needed_s


def finish_by(deadline: float | None, work: Callable[[], T], late: Callable[[], T]) -> T:
    """`work()`'s result, or `late()`'s when it has not returned by the deadline (`work` goes on
    in its daemon thread; it must finish what it started on its own). Without a deadline, `work()`."""
    if deadline is None:
        return work()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = work()
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread below
            outcome["error"] = e

    worker = threading.Thread(target=run, name="alerting-send", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()))
    if worker.is_alive():
        return late()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
