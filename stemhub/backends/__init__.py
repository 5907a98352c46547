"""Separation backends behind one protocol (:class:`stemhub.backends.base.Backend`)."""

from stemhub.backends.base import (
    Backend,
    ProgressCallback,
    SeparationResult,
    SeparationTask,
    StemFile,
)

__all__ = ["Backend", "ProgressCallback", "SeparationResult", "SeparationTask", "StemFile"]
