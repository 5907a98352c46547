"""Receiving the bridge's webhooks safely: verify, refuse stale, refuse replays.

For the app on the other end (a Python service behind n8n, a test). Three checks, in
the order that costs least to an attacker:

1. the signature: an HMAC over the raw body (StemSplit) or over ``id.timestamp.body``
   (Standard Webhooks), compared in constant time, so a forged or altered body fails;
2. freshness: the signed timestamp (Standard Webhooks' header; the StemSplit body's
   ``timestamp``) must be within ``tolerance_s`` of now, so an old capture fails;
3. replay: the message id must not have been accepted before within the tolerance
   window, so a capture resent within the window fails too. Retries of one message
   share the id, so a receiver that answered 2xx once is not handed the event again.
   The id is always one the signature covers (Standard Webhooks signs ``webhook-id``;
   a StemSplit body carries its ``id`` inside the signed body), never a header an
   attacker may change.

Each failure raises :class:`WebhookRejected` with a ``reason`` (``forged``, ``stale``,
``replayed``, ``malformed``); answer it with 400 or 401 and drop the body.

An id counts as received once the application has processed it. Use
``with receiver.handle(body, headers) as event:``: when the block raises, the id is
forgotten again, so the sender's retry of a delivery the application failed to process
gets through instead of being refused as a replay (or call :meth:`forget` yourself).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

from stemhub import stemsplit_wire

DEFAULT_TOLERANCE_S = 300.0
STEMSPLIT_TOLERANCE_S = 27 * 3600.0
"""A StemSplit body keeps its first timestamp on every retry: allow the retry window."""


class WebhookRejected(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ReplayGuard:
    """Message ids accepted in the last ``window_s`` seconds (in memory, thread-safe)."""

    def __init__(self, window_s: float, clock: Callable[[], float] = time.time) -> None:
        self.window_s = window_s
        self.clock = clock
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def forget(self, msg_id: str) -> None:
        """Let ``msg_id`` through again (its processing failed; the sender will retry)."""
        with self._lock:
            self._seen.pop(msg_id, None)

    def first_time(self, msg_id: str) -> bool:
        now = self.clock()
        with self._lock:
            if len(self._seen) > 1000:
                self._seen = {k: t for k, t in self._seen.items() if t > now}
            expires = self._seen.get(msg_id)
            if expires is not None and expires > now:
                return False
            self._seen[msg_id] = now + self.window_s
            return True


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _key(secret: str) -> bytes:
    raw = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the secret is not a whsec_<base64> signing secret") from None


def _json_body(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookRejected("malformed", "The body is not JSON.") from None
    if not isinstance(parsed, dict):
        raise WebhookRejected("malformed", "The body is not a JSON object.")
    return parsed


class _Receiver:
    replays: ReplayGuard

    def verify(self, body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
        return self._checked(body, headers)[1]

    def _checked(self, body: bytes, headers: Mapping[str, str]) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def forget(self, msg_id: str) -> None:
        """Accept ``msg_id`` again: its processing failed and the sender will retry it."""
        self.replays.forget(msg_id)

    @contextlib.contextmanager
    def handle(self, body: bytes, headers: Mapping[str, str]) -> Iterator[dict[str, Any]]:
        """Verify, then process in the block; a block that raises leaves the id unseen."""
        msg_id, event = self._checked(body, headers)
        try:
            yield event
        except BaseException:
            self.forget(msg_id)
            raise


class StandardWebhookReceiver(_Receiver):
    """Verifies ``/v1`` deliveries (Standard Webhooks) signed with a ``whsec_`` secret."""

    def __init__(
        self,
        secret: str,
        *,
        tolerance_s: float = DEFAULT_TOLERANCE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = _key(secret)
        self.tolerance_s = tolerance_s
        self.clock = clock
        self.replays = ReplayGuard(2 * tolerance_s, clock)

    def _checked(self, body: bytes, headers: Mapping[str, str]) -> tuple[str, dict[str, Any]]:
        """The message id and the parsed event, or :class:`WebhookRejected`."""
        h = _lower(headers)
        msg_id = h.get("webhook-id", "")
        stamp = h.get("webhook-timestamp", "")
        signatures = h.get("webhook-signature", "")
        if not (msg_id and stamp and signatures):
            raise WebhookRejected("malformed", "The Standard Webhooks headers are missing.")
        if not (stamp.isascii() and stamp.isdigit()):
            raise WebhookRejected("malformed", "webhook-timestamp is not a number.")
        signed = f"{msg_id}.{stamp}.".encode() + body
        expected = hmac.new(self._key, signed, hashlib.sha256).digest()
        if not any(
            version == "v1" and hmac.compare_digest(expected, _b64(given))
            for version, _, given in (part.partition(",") for part in signatures.split())
        ):
            raise WebhookRejected("forged", "No signature matches the body.")
        if abs(self.clock() - int(stamp)) > self.tolerance_s:
            raise WebhookRejected("stale", "The signed timestamp is too far from now.")
        event = _json_body(body)
        if not self.replays.first_time(msg_id):
            raise WebhookRejected("replayed", f"Message {msg_id} was already received.")
        return msg_id, event


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return b""


class StemSplitWebhookReceiver(_Receiver):
    """Verifies ``/api/v1`` deliveries: ``X-Webhook-Signature`` over the raw body.

    The StemSplit signature covers only the body, so everything replay protection needs
    lives in the body: the hub puts the event's ``id`` (the same on every retry) and its
    ``timestamp`` there, and the official SDK's ``verify_and_parse`` still accepts it
    (its models keep unknown fields). The ``X-Webhook-Id`` header is not signed and is
    ignored here. A retry resends the same body, so the age allowed (``tolerance_s``)
    must cover the sender's retry window (26 hours); ids are remembered that long, so a
    capture is refused as a replay while it is young and as stale once it is old. A body
    without an ``id`` (another sender) is keyed by its signature.
    """

    def __init__(
        self,
        secret: str,
        *,
        tolerance_s: float = STEMSPLIT_TOLERANCE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.secret = secret
        self.tolerance_s = tolerance_s
        self.clock = clock
        self.replays = ReplayGuard(2 * tolerance_s, clock)

    def _checked(self, body: bytes, headers: Mapping[str, str]) -> tuple[str, dict[str, Any]]:
        h = _lower(headers)
        signature = h.get(stemsplit_wire.SIGNATURE_HEADER.lower())
        if not stemsplit_wire.verify_signature(body, signature, self.secret):
            raise WebhookRejected("forged", "X-Webhook-Signature does not match the body.")
        event = _json_body(body)
        stamp = str(event.get("timestamp", "")).replace("Z", "+00:00")
        try:
            sent = datetime.fromisoformat(stamp)
        except ValueError:
            raise WebhookRejected("malformed", "The body has no valid timestamp.") from None
        if sent.tzinfo is None:
            raise WebhookRejected("malformed", "The body's timestamp has no time zone.")
        if abs(self.clock() - sent.timestamp()) > self.tolerance_s:
            raise WebhookRejected("stale", "The event's timestamp is too far from now.")
        body_id = event.get("id")
        msg_id = body_id if isinstance(body_id, str) and body_id else f"sig:{signature}"
        if not self.replays.first_time(msg_id):
            raise WebhookRejected("replayed", f"Message {msg_id} was already received.")
        return msg_id, event


__all__ = [
    "DEFAULT_TOLERANCE_S",
    "STEMSPLIT_TOLERANCE_S",
    "ReplayGuard",
    "StandardWebhookReceiver",
    "StemSplitWebhookReceiver",
    "WebhookRejected",
]
