"""Test doubles that are real servers: a Slack-compatible HTTP API on 127.0.0.1 and an
SMTP server (aiosmtpd) on 127.0.0.1. Nothing is mocked: slack-sdk and smtplib talk
to them over TCP exactly as they would to Slack and a mail relay.

    with FakeSlack(tokens={"xoxb-good"}) as slack:
        WebClient("xoxb-good", base_url=slack.api_url).chat_postMessage(channel="#c", text="hi")
        slack.messages   # every successful chat.postMessage / webhook body, exactly as sent
        slack.fail_next("429", retry_after=1); slack.fail_next("500"); slack.fail_next("sleep", 5)
        slack.fail_next("error", "channel_not_found")        # {"ok": false, "error": ...} with HTTP 200
        slack.mode = "invalid_auth"   # persistent: "ok" | "500" | "429" | "sleep" | "invalid_auth"
        slack.on_request = lambda req: ...   # called (in the server thread) as each request arrives

    with FakeSMTP() as smtp:
        smtp.received            # every accepted message, exactly as sent
        smtp.hang_s = 30         # a stalled relay: DATA is answered only after 30 s, with a 451 (not kept)

    with Trickler(b"220-slow\\r\\n") as relay: ...   # alive, never done answering (one byte at a time)

Used by the alerting tests and bench/alert_latency.py (which puts tests/ on sys.path).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    raw: bytes
    body: Any  # parsed JSON, or form dict (single values), or text
    answered: str = ""  # what the server answered: ok | 429 | 500 | sleep | invalid_auth
    ts: str | None = None  # chat.postMessage: the ts the server gave the message
    received_at: float = field(default_factory=time.time)  # epoch seconds, when the request arrived


class FakeSlack:
    def __init__(self, tokens: set[str] | None = None, *, delay_s: float = 0.0):
        self.tokens = set(tokens or {"xoxb-test-token"})
        self.requests: list[Request] = []
        self.messages: list[Request] = []  # successfully accepted chat.postMessage + webhook posts
        self.updates: list[Request] = []  # successfully accepted chat.update calls
        self.mode = "ok"
        self.sleep_s = 5.0
        self.retry_after = 1
        self.delay_s = delay_s  # added to every successful answer (widens races)
        self.on_request: Any = None  # callable(Request), run as each request arrives
        self._script: deque[tuple[str, Any]] = deque()
        self._lock = threading.Lock()
        self._ts = itertools.count(1)
        self._posted_ts: dict[str, str] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802
                fake._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def webhook_url(self, secret: str = "T000/B000/XXXXXXXX") -> str:
        return f"http://127.0.0.1:{self.port}/services/{secret}"

    def fail_next(self, what: str, arg: Any = None, *, retry_after: int | None = None) -> None:
        with self._lock:
            self._script.append((what, retry_after if retry_after is not None else arg))

    def start(self) -> FakeSlack:
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def posted(self) -> list[dict[str, Any]]:
        """Bodies of accepted chat.postMessage calls."""
        return [m.body for m in self.messages if m.path.endswith("chat.postMessage")]

    def ts_of(self, index: int) -> str | None:
        """The ts the server gave the index-th accepted chat.postMessage."""
        return [m for m in self.messages if m.path.endswith("chat.postMessage")][index].ts

    def updated(self) -> list[dict[str, Any]]:
        return [m.body for m in self.updates]

    # ---------------------------------------------------------------- server side

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        ctype = h.headers.get("Content-Type", "")
        if "json" in ctype:
            body: Any = json.loads(raw or b"null")
        elif "x-www-form-urlencoded" in ctype:
            body = {k: v[0] if len(v) == 1 else v for k, v in parse_qs(raw.decode()).items()}
        else:
            body = raw.decode(errors="replace")
        req = Request(h.path, dict(h.headers.items()), raw, body)
        if self.on_request is not None:
            self.on_request(req)
        with self._lock:
            what, arg = self._script.popleft() if self._script else (self.mode, None)
            self.requests.append(req)
        req.answered = what
        webhook = h.path.startswith("/services/")
        try:
            if what == "429":
                ra = arg if arg is not None else self.retry_after
                self._send(
                    h,
                    429,
                    {"ok": False, "error": "ratelimited"} if not webhook else "rate_limited",
                    {"Retry-After": str(ra)},
                )
            elif what == "500":
                self._send(h, 500, {"ok": False, "error": "internal_error"} if not webhook else "internal_error")
            elif what == "sleep":
                time.sleep(arg if arg is not None else self.sleep_s)
                self._send(h, 200, {"ok": False, "error": "too_late"})
            elif what == "error" and not webhook:
                self._send(h, 200, {"ok": False, "error": arg or "internal_error"})
            elif what == "invalid_auth" and not webhook:
                self._send(h, 200, {"ok": False, "error": "invalid_auth"})
            elif webhook:
                if self.delay_s:
                    time.sleep(self.delay_s)
                with self._lock:
                    self.messages.append(req)
                self._send(h, 200, "ok")
            else:
                self._api(h, req)
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            pass

    def _api(self, h: BaseHTTPRequestHandler, req: Request) -> None:
        method = req.path.rsplit("/", 1)[-1]
        auth = h.headers.get("Authorization", "")
        token = (
            auth[7:]
            if auth.startswith("Bearer ")
            else (req.body or {}).get("token")
            if isinstance(req.body, dict)
            else None
        )
        if token not in self.tokens:
            req.answered = "invalid_auth"
            return self._send(h, 200, {"ok": False, "error": "invalid_auth"})
        body = req.body if isinstance(req.body, dict) else {}
        if method == "chat.update":
            with self._lock:
                known = (
                    any(m.body.get("ts") == body.get("ts") for m in self.messages if isinstance(m.body, dict))
                    or body.get("ts") in self._posted_ts
                )
                if known:
                    self.updates.append(req)
            if not known:
                return self._send(h, 200, {"ok": False, "error": "message_not_found"})
            return self._send(h, 200, {"ok": True, "channel": body.get("channel"), "ts": body.get("ts")})
        if method != "chat.postMessage":
            return self._send(h, 200, {"ok": False, "error": "unknown_method"})
        if not body.get("channel"):
            return self._send(h, 200, {"ok": False, "error": "channel_not_found"})
        if self.delay_s:
            time.sleep(self.delay_s)
        with self._lock:
            ts = f"{1700000000 + next(self._ts)}.000100"
            self.messages.append(req)
            self._posted_ts[ts] = body.get("channel")
            req.ts = ts
        channel = body["channel"]
        channel_id = "C" + format(abs(hash(channel)) % 10**8, "08d") if channel.startswith("#") else channel
        self._send(
            h,
            200,
            {
                "ok": True,
                "channel": channel_id,
                "ts": ts,
                "message": {"text": body.get("text"), "ts": ts, "thread_ts": body.get("thread_ts")},
            },
        )

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = (json.dumps(body) if not isinstance(body, str) else body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json; charset=utf-8" if not isinstance(body, str) else "text/html")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)
        h.wfile.flush()


# -------------------------------------------------------------------- SMTP


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes

    def message(self):
        import email
        from email import policy

        return email.message_from_bytes(self.content, policy=policy.default)


@dataclass
class FakeSMTP:
    """aiosmtpd on 127.0.0.1: `stop()` makes the port refuse connections, `start()` brings it back
    on the same port."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    hang_s: float = 0.0  # > 0: DATA is answered only after this long, with a 451 (the message is not kept)

    def __post_init__(self) -> None:
        if not self.port:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]
        self._controller: Any = None

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd handler hook
        if self.hang_s:
            await asyncio.sleep(self.hang_s)
            return "451 4.3.0 too late"
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 Message accepted for delivery"

    def start(self) -> FakeSMTP:
        from aiosmtpd.controller import Controller

        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> FakeSMTP:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# -------------------------------------------------------------------- a server that never finishes


class Trickler:
    """A TCP server on 127.0.0.1 that is alive but never finishes answering: every connection gets
    `payload` repeated, one byte every `every_s`, until `stop()` closes it. Socket timeouts never
    fire against it (a byte always arrives in time): what a slow relay, a stalled proxy or a
    half-dead load balancer does.

        with Trickler(b"220-slow\\r\\n") as smtp: ...        # an SMTP greeting that never ends
        with Trickler(b"HTTP/1.1 200 OK\\r\\nX: ") as api: ...  # response headers that never end
    """

    def __init__(self, payload: bytes, every_s: float = 0.2):
        self.payload, self.every_s = payload, every_s
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.port = self.server.getsockname()[1]
        self.connections: list[socket.socket] = []
        self._stop = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections.append(conn)
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        for byte in itertools.cycle(self.payload):
            if self._stop.wait(self.every_s):
                break
            try:
                conn.sendall(bytes([byte]))
            except OSError:
                break
        conn.close()

    def start(self) -> Trickler:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.server.close()
        for conn in self.connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> Trickler:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
