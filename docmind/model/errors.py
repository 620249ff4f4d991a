"""Errors of the model layer. Each message tells the user what to do next."""

from __future__ import annotations


class ModelError(Exception):
    """Base class for model-layer failures shown to the user."""


class ModelNotDownloadedError(ModelError):
    """The chosen model is not on disk yet."""


class ModelCorruptError(ModelError):
    """Model files are missing, truncated or fail their checksum."""


class DiskSpaceError(ModelError):
    """Not enough free disk for the download."""


class InsufficientMemoryError(ModelError):
    """The chosen model needs more memory than this machine has."""


class DownloadError(ModelError):
    """The download failed after retries (network or server problem)."""


class DownloadCancelledError(ModelError):
    """The user cancelled the download; the partial files are kept for resuming."""


class PromptTooLongError(ModelError):
    """A prompt does not fit in the model's context window."""


class EngineStoppedError(ModelError):
    """The generation engine was shut down while a request was pending."""


class ModelSwitchedError(EngineStoppedError):
    """The user switched models while this answer was still being written on the old one."""

    def __init__(self, message: str = "This answer was stopped because the model was switched. "
                                      "Send the message again to ask the new model.") -> None:
        super().__init__(message)


class GenerationFaultError(ModelError):
    """One request's generation step failed (invalid numbers from the model, a decoding error); only
    that request ends, the engine keeps serving the others."""


class EngineStalledError(ModelError):
    """The generation engine made no progress for too long; the waiting request gives up with this."""
