"""stemhub: music stem separation where people already work.

This module is the plugin API: a plugin imports only the names in ``__all__`` (a test
fails when code under ``plugins/`` imports anything else from ``stemhub``). Everything
else in the package may change without notice.
"""

from typing import TYPE_CHECKING, Any

from stemhub.errors import ConfigError, ErrorCode, RequestRejected, StemhubError
from stemhub.frontend import Frontend
from stemhub.models import (
    ALL_STEMS,
    AudioInfo,
    BackendCapabilities,
    Job,
    JobRequest,
    JobStatus,
    Origin,
    Output,
    OutputFormat,
    Quality,
    Source,
    SourceKind,
    Stage,
    StemSet,
    utcnow,
)
from stemhub.plugin.api import KeyValue, PluginHub, PluginState
from stemhub.plugin.spec import (
    BackendFactory,
    FrontendFactory,
    RegisterCommand,
    RegisterFrontend,
    hookimpl,
)
from stemhub.retry import RetryPolicy
from stemhub.waiting import wait_event

if TYPE_CHECKING:
    from stemhub import media, stemsplit_wire
    from stemhub.config import PluginSettings, Settings
    from stemhub.fetch import format_bytes
    from stemhub.outbox import (
        WEBHOOK_RETRY,
        Attempt,
        DeliveryLimits,
        Outbox,
        SigningScheme,
        Subscription,
        new_secret,
    )
    from stemhub.plugin.state import open_plugin_state
    from stemhub.quota import humanize_wait, parse_limit
    from stemhub.rate_windows import RateWindow
    from stemhub.web.zipstream import zip_response

__version__ = "0.1.0"

# imported on first use: the settings machinery, the StemSplit wire models and the store
# behind the webhook outbox cost start-up time that commands like ``stemhub --help`` never
# need
_LAZY = {
    "Attempt": "stemhub.outbox",
    "DeliveryLimits": "stemhub.outbox",
    "Outbox": "stemhub.outbox",
    "SigningScheme": "stemhub.outbox",
    "Subscription": "stemhub.outbox",
    "WEBHOOK_RETRY": "stemhub.outbox",
    "new_secret": "stemhub.outbox",
    "RateWindow": "stemhub.rate_windows",
    "open_plugin_state": "stemhub.plugin.state",
    "PluginSettings": "stemhub.config",
    "Settings": "stemhub.config",
    "format_bytes": "stemhub.fetch",
    "humanize_wait": "stemhub.quota",
    "parse_limit": "stemhub.quota",
    "zip_response": "stemhub.web.zipstream",
    "media": "stemhub",
    "stemsplit_wire": "stemhub",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'stemhub' has no attribute {name!r}")
    import importlib

    if module == "stemhub":
        # a public module of its own (audio I/O; the hosted API's wire format)
        return importlib.import_module(f"stemhub.{name}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "ALL_STEMS",
    "WEBHOOK_RETRY",
    "Attempt",
    "AudioInfo",
    "BackendCapabilities",
    "BackendFactory",
    "ConfigError",
    "DeliveryLimits",
    "ErrorCode",
    "Frontend",
    "FrontendFactory",
    "Job",
    "JobRequest",
    "JobStatus",
    "KeyValue",
    "Origin",
    "Outbox",
    "Output",
    "OutputFormat",
    "PluginHub",
    "PluginSettings",
    "PluginState",
    "Quality",
    "RateWindow",
    "RegisterCommand",
    "RegisterFrontend",
    "RequestRejected",
    "RetryPolicy",
    "Settings",
    "SigningScheme",
    "Source",
    "SourceKind",
    "Stage",
    "StemSet",
    "StemhubError",
    "Subscription",
    "__version__",
    "format_bytes",
    "hookimpl",
    "humanize_wait",
    "media",
    "new_secret",
    "open_plugin_state",
    "parse_limit",
    "stemsplit_wire",
    "utcnow",
    "wait_event",
    "zip_response",
]
