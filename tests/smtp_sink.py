"""A real SMTP server for tests (aiosmtpd): it records what it receives and can refuse or stall.

It binds 127.0.0.1 port 0 and reads the port back (STACK.md, "Tests that talk to services"), so
point a worker at it with ``EMAIL_URL=sink.email_url``. Everything it sees is kept in order:

- ``messages``: the messages it accepted (parsed, with the envelope recipients);
- ``rcpt_attempts(address)``: every ``RCPT TO`` for an address, with the reply and the time — one
  per delivery attempt, whether refused or not;
- ``data_started``: how many ``DATA`` bodies arrived (counted before any stall).

Faults, switchable while it runs:

- ``refuse(code, text, address=None, stage="rcpt"|"data")``: answer that reply (451: try later,
  550: never) at ``RCPT TO`` or after the message body, for one address or for all;
- ``hold_data(seconds)``: hold the reply to each following message body that long (a slow server;
  the client is mid-send meanwhile). ``accept()`` clears refusals and holds for new messages.

Use as a context manager (``with SmtpSink() as sink:``) or call ``start()`` / ``stop()``;
``stop()`` cancels any reply still on hold.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

HOST = "127.0.0.1"


@dataclass(frozen=True)
class ReceivedMessage:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    received_at: datetime

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)

    @property
    def subject(self) -> str:
        return str(self.message["Subject"] or "")

    @property
    def body(self) -> str:
        part = self.message.get_body(preferencelist=("plain", "html"))
        return part.get_content() if part is not None else ""

    @property
    def text(self) -> str:
        """Everything a reader could see: the decoded subject and body, and the raw message."""
        return "\n".join([self.subject, self.body, self.data.decode("utf-8", errors="replace")])


@dataclass(frozen=True)
class RcptAttempt:
    address: str
    reply: str
    at: datetime

    @property
    def code(self) -> int:
        return int(self.reply[:3])


@dataclass
class _Rule:
    code: int
    text: str
    address: str | None
    stage: str

    def applies(self, stage: str, addresses) -> bool:
        return self.stage == stage and (self.address is None or self.address.lower() in addresses)

    @property
    def reply(self) -> str:
        return f"{self.code} {self.text}"


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    messages: list[ReceivedMessage] = field(default_factory=list)
    rcpts: list[RcptAttempt] = field(default_factory=list)
    rules: list[_Rule] = field(default_factory=list)
    hold_seconds: float = 0.0
    data_started: int = 0


class _Handler:
    def __init__(self, state: _State):
        self.state = state

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options):
        state = self.state
        with state.lock:
            rule = next((r for r in state.rules if r.applies("rcpt", {address.lower()})), None)
            reply = rule.reply if rule else "250 OK"
            state.rcpts.append(RcptAttempt(address, reply, _now()))
        if rule is None:
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope):
        state = self.state
        addresses = {a.lower() for a in envelope.rcpt_tos}
        with state.lock:
            state.data_started += 1
            hold_until = time.monotonic() + state.hold_seconds
        # A slow server: the client waits for this reply (and may die waiting).
        while time.monotonic() < hold_until:
            await asyncio.sleep(0.05)
        with state.lock:
            rule = next((r for r in state.rules if r.applies("data", addresses)), None)
            if rule is not None:
                return rule.reply
            state.messages.append(
                ReceivedMessage(
                    mail_from=envelope.mail_from,
                    rcpt_tos=tuple(envelope.rcpt_tos),
                    data=bytes(envelope.original_content or envelope.content),
                    received_at=_now(),
                )
            )
        return "250 Message accepted for delivery"


class _PortZeroController(Controller):
    """aiosmtpd's controller, bound to port 0: the real port is read back before first use."""

    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


def _now() -> datetime:
    return datetime.now(UTC)


class SmtpSink:
    def __init__(self, host: str = HOST, *, ready_timeout: float = 10.0):
        self._state = _State()
        self._controller = _PortZeroController(
            _Handler(self._state), hostname=host, port=0, ready_timeout=ready_timeout
        )
        self.host = host
        self.port: int | None = None

    # --- life cycle ------------------------------------------------------------------------

    def start(self) -> SmtpSink:
        self._controller.start()
        self.port = self._controller.port
        return self

    def stop(self) -> None:
        if self._controller._thread is not None:
            self._controller.stop()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def email_url(self) -> str:
        """``EMAIL_URL`` for Django (django-environ): plain SMTP, no TLS, no login."""
        return f"smtp://{self.host}:{self.port}"

    # --- faults -----------------------------------------------------------------------------

    def refuse(self, code: int, text: str = "", *, address: str | None = None, stage: str = "rcpt") -> None:
        if stage not in ("rcpt", "data"):
            raise ValueError(f"stage must be 'rcpt' or 'data', not {stage!r}")
        default = "Try again later" if 400 <= code < 500 else "Mailbox unavailable"
        with self._state.lock:
            self._state.rules.append(_Rule(code, text or default, address, stage))

    def hold_data(self, seconds: float) -> None:
        with self._state.lock:
            self._state.hold_seconds = seconds

    def accept(self) -> None:
        """Answer every following command at once with success (replies already on hold stay held)."""
        with self._state.lock:
            self._state.rules.clear()
            self._state.hold_seconds = 0.0

    # --- what it saw ------------------------------------------------------------------------

    @property
    def messages(self) -> list[ReceivedMessage]:
        with self._state.lock:
            return list(self._state.messages)

    def messages_to(self, address: str) -> list[ReceivedMessage]:
        return [m for m in self.messages if address.lower() in {r.lower() for r in m.rcpt_tos}]

    def rcpt_attempts(self, address: str | None = None) -> list[RcptAttempt]:
        with self._state.lock:
            rcpts = list(self._state.rcpts)
        return [r for r in rcpts if address is None or r.address.lower() == address.lower()]

    @property
    def data_started(self) -> int:
        with self._state.lock:
            return self._state.data_started
