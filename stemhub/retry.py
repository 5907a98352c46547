"""One retry policy: how many tries, how long between them, and when to give up.

Every place that tries again uses it: the pipeline's stages, delivery to a frontend, the
webhook outbox, the StemSplit client's replays and its pollers. Each keeps its own
numbers (a poller's first wait is not an outbox's), never its own formula.

The n-th retry waits ``first_delay_s * factor**(n-1)``, capped at ``max_delay_s``, spread
by +-``jitter`` of itself so a crowd of clients that failed together does not come back
together. A server's ``Retry-After`` wins over the formula (capped too: a server asking
for an hour does not park a chat user's job for an hour). ``attempts`` counts tries, the
first included; ``window_s`` bounds the time since the first try, when set.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Self


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    first_delay_s: float = 0.5
    factor: float = 2.0
    max_delay_s: float = 30.0
    jitter: float = 0.5
    window_s: float | None = None
    max_retry_after_s: float | None = None
    """Cap on a server's ``Retry-After``; ``None`` caps it at ``max_delay_s``."""

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("a retry policy needs at least one attempt")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter is a share of the delay, between 0 and 1")

    def delay(
        self,
        failures: int,
        retry_after: float | None = None,
        *,
        rng: random.Random | None = None,
    ) -> float:
        """Seconds to wait after ``failures`` failed tries (1 after the first failure)."""
        if retry_after is not None:
            cap = self.max_retry_after_s if self.max_retry_after_s is not None else self.max_delay_s
            return max(0.0, min(float(retry_after), cap))
        base = min(self.max_delay_s, self.first_delay_s * self.factor ** max(0, failures - 1))
        spread = base * self.jitter
        draw = (rng or random).uniform(-spread, spread)
        return max(0.0, base + draw)

    def gives_up(self, failures: int, elapsed_s: float = 0.0) -> bool:
        """True when ``failures`` failed tries spent the budget (or the window passed)."""
        if failures >= self.attempts:
            return True
        return self.window_s is not None and elapsed_s >= self.window_s

    def with_(self, **changes: float | int | None) -> Self:
        """A copy with some numbers changed (``policy.with_(attempts=5)``)."""
        return replace(self, **changes)  # type: ignore[arg-type]


__all__ = ["RetryPolicy"]
