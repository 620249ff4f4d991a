"""How errors reach the user: a clear message in the page, never a stack trace."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import gradio as gr

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])

UNEXPECTED = "Something went wrong: {error}. Nothing was lost; try again, and see the log if it keeps happening."


def user_message(error: BaseException) -> str:
    """The message to show for ``error``: its own text when it is written for users, else a generic line."""
    from docmind.agent import InvalidExportError, UnknownSessionError
    from docmind.model.errors import ModelError
    from docmind.storage import StorageError

    if isinstance(error, (UnknownSessionError, InvalidExportError, ModelError, StorageError)):
        return str(error)
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    log.error("unexpected error in the app", exc_info=error)
    return UNEXPECTED.format(error=type(error).__name__)


def shows_errors(fn: F) -> F:
    """Turn any exception ``fn`` raises into a ``gr.Error`` toast with a user-facing message."""
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as error:
                raise gr.Error(user_message(error)) from error

        return async_wrapper  # type: ignore[return-value]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as error:
            raise gr.Error(user_message(error)) from error

    return wrapper  # type: ignore[return-value]
