"""stemhub's HTTP bridge for n8n, Zapier and StemSplit API clients.

The receiver helpers are the public part a receiving application imports::

    from stemhub_n8n_bridge import StandardWebhookReceiver, WebhookRejected
"""

from stemhub_n8n_bridge.receiver import (
    ReplayGuard,
    StandardWebhookReceiver,
    StemSplitWebhookReceiver,
    WebhookRejected,
)

__all__ = [
    "ReplayGuard",
    "StandardWebhookReceiver",
    "StemSplitWebhookReceiver",
    "WebhookRejected",
]
