"""What the Slack and the e-mail senders share: `DeliveryError` (a failed send, with when to
retry it and whether retrying can help) and the `notify()` time budget: each Slack/SMTP call
gets the time that is left as its timeout (`time_left`), a retry is made only when it fits
(`within`), and below `MIN_ATTEMPT_S` no delivery is started (the row stays pending)."""

from __future__ import annotations

import time


class DeliveryError(Exception):
    def __init__(self, message: str, *, retry_after_s: float | None = None, permanent: bool = False):
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.permanent = permanent


# Below this much time left in a notify() budget, a delivery is not started (left pending).
MIN_ATTEMPT_S = 0.25


def time_left(deadline: float | None, default: float) -> float:
    """The timeout for one call: the configured one, or less when the notify() budget ends sooner."""
    if deadline is None:
        return default
    return max(0.05, min(default, deadline - time.monotonic()))


def within(deadline: float | None, needed_s: float) -> bool:
    return deadline is None or time.monotonic() + needed_s < deadline


def spent(deadline: float | None, needed_s: float = 0.0) -> bool:
    """Less than `needed_s` is left before the deadline (never, without one)."""
    return deadline is not None and deadline - time.monotonic() < needed_s
