"""Secrets never leave: every credential, and every string shaped like one, is masked before an
alert is rendered, sent, stored or logged.

    registry.py   what is known to be secret: registered credentials, the environment's secrets
    patterns.py   what looks like a secret: detect-secrets' detectors, Airflow's masker, our own
    masking.py    `redact(text)` (all of them), the redacting log filter
    sanitise.py   an alert made safe once, in `Notifier.notify()`: redacted, cleaned, bounded
"""

from .masking import redact, redacting_logger
from .patterns import REDACTED
from .registry import known_secrets, register_secret

__all__ = ["REDACTED", "known_secrets", "redact", "redacting_logger", "register_secret"]
