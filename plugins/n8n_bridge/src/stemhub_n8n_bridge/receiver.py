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

Each failure raises :class:`WebhookRejected` with a ``reason`` (``forged``, ``stale``,
``replayed``, ``malformed``); answer it with 400 or 401 and drop the body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from stemhub.stemsplit_wire import SIGNATURE_HEADER, verify_signature

DEFAULT_TOLERANCE_S = 300.0


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


class StandardWebhookReceiver:
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

    def verify(self, body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
        """The parsed event, or :class:`WebhookRejected`."""
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
        if not self.replays.first_time(msg_id):
            raise WebhookRejected("replayed", f"Message {msg_id} was already received.")
        return _json_body(body)


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return b""


class StemSplitWebhookReceiver:
    """Verifies ``/api/v1`` deliveries: ``X-Webhook-Signature`` over the raw body.

    The StemSplit signature covers only the body, and a retry hours later resends the
    same body, so the signature cannot prove an attempt is fresh: that is why ``/v1``
    uses Standard Webhooks. What this receiver can do it does: replays are refused by
    ``X-Webhook-Id`` (stable across retries) for ``replay_window_s``, and with
    ``tolerance_s`` set, events whose signed ``timestamp`` is older are refused as stale
    (for receivers that would rather miss a late retry than act on an old event).
    """

    def __init__(
        self,
        secret: str,
        *,
        tolerance_s: float | None = None,
        replay_window_s: float = 27 * 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.secret = secret
        self.tolerance_s = tolerance_s
        self.clock = clock
        self.replays = ReplayGuard(replay_window_s, clock)

    def verify(self, body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
        h = _lower(headers)
        signature = h.get(SIGNATURE_HEADER.lower())
        if not verify_signature(body, signature, self.secret):
            raise WebhookRejected("forged", "X-Webhook-Signature does not match the body.")
        event = _json_body(body)
        if self.tolerance_s is not None:
            stamp = str(event.get("timestamp", "")).replace("Z", "+00:00")
            try:
                sent = datetime.fromisoformat(stamp)
            except ValueError:
                raise WebhookRejected("malformed", "The body has no valid timestamp.") from None
            if abs(self.clock() - sent.timestamp()) > self.tolerance_s:
                raise WebhookRejected("stale", "The event's timestamp is too far from now.")
        msg_id = h.get("x-webhook-id") or (signature or "")
        if not self.replays.first_time(msg_id):
            raise WebhookRejected("replayed", f"Message {msg_id} was already received.")
        return event


__all__ = [
    "DEFAULT_TOLERANCE_S",
    "ReplayGuard",
    "StandardWebhookReceiver",
    "StemSplitWebhookReceiver",
    "WebhookRejected",
]
