"""Namespaces of the plugin's state in the hub's shared key-value store.

Kept in the store, not in memory, so every hub instance sharing the database sees them.
"""

STATUS_NS = "slack:status"
"""job id -> the status message (channel, ts, thread_ts), for edits after a restart."""
EVENTS_NS = "slack:events"
"""event_id -> first seen: an event is handled by the first hub to record it."""
FILES_NS = "slack:files"
"""file id -> split once, whether it arrived as ``message.im`` or ``file_shared``."""

REQUESTS_NS = "slack:requests"
"""X-Slack-Signature -> seen: a signed request replayed within 5 minutes is dropped."""
TOKEN_REFRESH_NS = "slack:token-refresh"  # noqa: S105 - a namespace, not a secret
"""team id -> the hub refreshing its bot token now: one refresh at a time (token rotation)."""

__all__ = ["EVENTS_NS", "FILES_NS", "REQUESTS_NS", "STATUS_NS", "TOKEN_REFRESH_NS"]
