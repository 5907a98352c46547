"""Namespaces of the plugin's state in the hub's shared key-value store.

Kept in the store, not in memory, so every hub instance sharing the database sees them.
"""

STATUS_NS = "slack:status"
"""job id -> the status message (channel, ts, thread_ts), for edits after a restart."""
EVENTS_NS = "slack:events"
"""event_id -> first seen: an event is handled by the first hub to record it."""
FILES_NS = "slack:files"
"""file id -> split once, whether it arrived as ``message.im`` or ``file_shared``."""

__all__ = ["EVENTS_NS", "FILES_NS", "STATUS_NS"]
