"""Errors that reach the user: each carries a stable code and a one-line message.

The daemon maps `status` to a gRPC status code; the CLI prints the message and
exits non-zero. Anything that is not a PeanutError is a bug and is reported as
INTERNAL with its type named.
"""

from __future__ import annotations


class PeanutError(Exception):
    """A failure the user can act on. `code` is stable; `message` is one line."""

    status = "INVALID_ARGUMENT"  # name of a grpc.StatusCode member
    code = "INVALID_REQUEST"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class InvalidRequest(PeanutError):
    status = "INVALID_ARGUMENT"
    code = "INVALID_REQUEST"


class MediaNotFound(PeanutError):
    status = "NOT_FOUND"
    code = "MEDIA_NOT_FOUND"


class MediaError(PeanutError):
    """Unreadable, corrupt or unsupported media."""

    status = "INVALID_ARGUMENT"
    code = "MEDIA_UNREADABLE"


class RangeError(PeanutError):
    status = "OUT_OF_RANGE"
    code = "RANGE_OUTSIDE_CLIP"


class MaskError(PeanutError):
    """Masks that do not fit the source (count, aspect ratio) or are empty."""

    status = "INVALID_ARGUMENT"
    code = "MASK_INVALID"


class OutputError(PeanutError):
    """Output path problems: inside the source, not writable."""

    status = "INVALID_ARGUMENT"
    code = "OUTPUT_INVALID"


class OutputExists(PeanutError):
    status = "ALREADY_EXISTS"
    code = "OUTPUT_EXISTS"


class BackendUnavailable(PeanutError):
    """A named backend cannot run here (no weights, no GPU, missing package)."""

    status = "FAILED_PRECONDITION"
    code = "BACKEND_UNAVAILABLE"


class PromptError(PeanutError):
    """A text prompt that cannot be turned into a mask (empty, nothing found, ambiguous)."""

    status = "INVALID_ARGUMENT"
    code = "PROMPT_UNRESOLVED"


class ModelError(PeanutError):
    """Weights missing, checksum mismatch, or a checkpoint that does not fit the architecture."""

    status = "FAILED_PRECONDITION"
    code = "MODEL_INVALID"


class ResourceExhausted(PeanutError):
    status = "RESOURCE_EXHAUSTED"
    code = "RESOURCE_EXHAUSTED"


class JobCancelled(PeanutError):
    status = "CANCELLED"
    code = "CANCELLED"


class JobInterrupted(PeanutError):
    """The daemon is stopping: the job keeps its partial output so it can be resumed."""

    status = "ABORTED"
    code = "INTERRUPTED"
