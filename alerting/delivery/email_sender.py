"""Send e-mail: `EmailSender` speaks SMTP (STARTTLS and login when configured) and returns the
Message-ID, which a recovery's e-mail answers with In-Reply-To. The whole SMTP conversation
ends within the notify() budget (`_DeadlineSMTP`)."""

from __future__ import annotations

import smtplib
import ssl
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from ..redaction import redact
from ..redaction.sanitise import clean_text
from ..rendering.email_message import EmailMessageParts
from ..routing.credentials import EmailSettings
from ..routing.messages import quote
from ..routing.schema import ADDRESS
from .budget import SEND_MARGIN_S, DeliveryError, time_left


class _DeadlineSMTP(smtplib.SMTP):
    """smtplib.SMTP whose every socket operation waits at most until the deadline, so a relay that
    answers each command slowly cannot stretch one send past the notify() budget."""

    def __init__(self, host: str, port: int, *, timeout: float, deadline: float | None):
        self._deadline = deadline
        super().__init__(host, port, timeout=time_left(deadline, timeout))

    def _arm(self) -> None:
        if self._deadline is not None and self.sock is not None:
            left = self._deadline - SEND_MARGIN_S - time.monotonic()
            if left <= 0:
                raise TimeoutError("the notify() budget is spent")
            self.sock.settimeout(min(self.timeout, left))

    def send(self, s: Any) -> None:
        self._arm()
        super().send(s)

    def getreply(self) -> tuple[int, bytes]:
        self._arm()
        return super().getreply()


class EmailSender:
    def __init__(self, settings: EmailSettings):
        self.settings = settings

    def send(
        self,
        to: list[str],
        parts: EmailMessageParts,
        *,
        headers: dict[str, str] | None = None,
        deadline: float | None = None,
    ) -> str:
        """Send; the Message-ID (a reply's In-Reply-To names it). With `deadline` (time.monotonic()),
        the whole SMTP conversation ends by then."""
        s = self.settings
        bad = [a for a in to if not ADDRESS.fullmatch(a)]
        if bad:  # a row recorded before its routing file was checked this strictly: never sent
            raise DeliveryError(f"refused: not an e-mail address: {', '.join(quote(a) for a in bad)}", permanent=True)
        msg = EmailMessage()
        msg["Subject"] = clean_text(parts.subject)
        msg["From"] = s.sender
        msg["To"] = ", ".join(to)
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = message_id = make_msgid(domain="alerting.local")
        for k, v in (headers or {}).items():
            msg[k] = clean_text(v)
        msg.set_content(clean_text(parts.text))
        msg.add_alternative(clean_text(parts.html), subtype="html")
        user, password = s.credentials()
        try:
            with _DeadlineSMTP(s.smtp_host, s.smtp_port, timeout=s.timeout_s, deadline=deadline) as smtp:
                smtp.ehlo()
                if s.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if user and password is not None:
                    smtp.login(user, password.get())
                refused = smtp.send_message(msg)
                if refused and len(refused) == len(to):
                    raise DeliveryError(f"all recipients refused: {sorted(refused)}")
            return message_id
        except DeliveryError:
            raise
        except (smtplib.SMTPException, OSError) as e:
            raise DeliveryError(redact(f"SMTP {s.smtp_host}:{s.smtp_port}: {type(e).__name__}: {e}")) from None
