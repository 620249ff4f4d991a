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

ERROR_SECONDS = 8
"""How long an error pop-up stays (it also has a close button)."""
ERROR_TITLE = "That did not work"
"""The pop-up's heading; the sentence below it says what went wrong and what to do."""
UNEXPECTED = "Something went wrong: {error}. Nothing was lost; try again, and see the log if it keeps happening."


def user_message(error: BaseException) -> str:
    """The message to show for ``error``: its own text when it is written for users, else a generic line."""
    if isinstance(error, _written_for_users()):
        return str(error)
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    log.error("unexpected error in the app", exc_info=error)
    return UNEXPECTED.format(error=type(error).__name__)


@functools.cache
def _written_for_users() -> tuple[type[BaseException], ...]:
    """Exceptions whose message already tells the user what happened and what to do."""
    from docmind.agent.chat import EmptyQuestionError, QuestionTooLongError
    from docmind.agent.sessions import InvalidExportError, NothingToRegenerateError, UnknownSessionError
    from docmind.agent.turns import SessionBusyError
    from docmind.cache import DocumentNotFoundError, EmbeddingModelError, UnreadableFileError
    from docmind.cache.collections import CollectionError
    from docmind.cache.transfer import TransferError
    from docmind.cache.watch import WatchError
    from docmind.model.errors import ModelError
    from docmind.storage import StorageError

    return (EmptyQuestionError, QuestionTooLongError, InvalidExportError, UnknownSessionError, SessionBusyError,
            NothingToRegenerateError, DocumentNotFoundError, EmbeddingModelError, UnreadableFileError, ModelError,
            StorageError, CollectionError, TransferError, WatchError)


def error_popup(message: str) -> gr.Error:
    """A short-lived, closable error pop-up that says what went wrong."""
    return gr.Error(message, duration=ERROR_SECONDS, title=ERROR_TITLE, print_exception=False)


def shows_errors(fn: F) -> F:
    """Turn any exception ``fn`` raises into a short-lived error pop-up with a user-facing message."""
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            except gr.Error as error:
                raise error_popup(error.message) from error
            except Exception as error:
                raise error_popup(user_message(error)) from error

        return async_wrapper  # type: ignore[return-value]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error as error:
            raise error_popup(error.message) from error
        except Exception as error:
            raise error_popup(user_message(error)) from error

    return wrapper  # type: ignore[return-value]
