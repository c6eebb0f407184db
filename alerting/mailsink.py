"""A development mail sink: an SMTP server on 127.0.0.1 that keeps every message as a `.eml`
file (and a line in `index.txt`) instead of delivering it, so a developer sees the alert
e-mails of a local run. `make run` starts one; docker-compose uses mailpit instead.

    python -m alerting.mailsink --dir var/mail --port 1025
"""

from __future__ import annotations

import argparse
import email
import socket
import threading
import time
from email import policy
from pathlib import Path
from typing import Any


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


class MailSink:
    def __init__(self, directory: str | Path, *, host: str = "127.0.0.1", port: int = 1025):
        self.directory = Path(directory)
        self.host = host
        self.port = port
        self._controller: Any = None
        self._lock = threading.Lock()
        self.count = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's handler hook
        msg = email.message_from_bytes(envelope.content, policy=policy.default)
        with self._lock:
            self.count += 1
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
            path = self.directory / f"{stamp}-{self.count:04d}.eml"
            path.write_bytes(envelope.content)
            with open(self.directory / "index.txt", "a", encoding="utf-8") as index:
                index.write(f"{stamp}  {path.name}  to={','.join(envelope.rcpt_tos)}  {msg['Subject']}\n")
        return "250 Message accepted for delivery"

    def start(self) -> MailSink:
        """Listen on the port, or on a free one when it is taken (see `.port`)."""
        from aiosmtpd.controller import Controller

        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.port or not port_free(self.port, self.host):
            with socket.socket() as s:
                s.bind((self.host, 0))
                self.port = s.getsockname()[1]
        self._controller = Controller(self, hostname=self.host, port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> MailSink:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", default="var/mail")
    parser.add_argument("--port", type=int, default=1025)
    args = parser.parse_args(argv)
    with MailSink(args.dir, port=args.port) as sink:
        print(f"mail sink on 127.0.0.1:{sink.port}, writing to {sink.directory}/ (Ctrl-C stops)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
