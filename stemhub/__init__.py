"""stemhub: music stem separation where people already work."""

from stemhub.errors import ErrorCode, RequestRejected, StemhubError
from stemhub.hookspecs import hookimpl
from stemhub.models import (
    AudioInfo,
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
)

__version__ = "0.1.0"

__all__ = [
    "AudioInfo",
    "ErrorCode",
    "Job",
    "JobRequest",
    "JobStatus",
    "Origin",
    "Output",
    "OutputFormat",
    "Quality",
    "RequestRejected",
    "Source",
    "SourceKind",
    "Stage",
    "StemSet",
    "StemhubError",
    "__version__",
    "hookimpl",
]
