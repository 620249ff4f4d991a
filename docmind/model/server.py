"""Talk to an OpenAI-compatible model server (vLLM, Ollama, llama.cpp, LM Studio, ``transformers serve``).

This module holds what needs no LlamaIndex: the client options, bounded connection retries (tenacity),
``probe`` (the server's models), ``check_connection`` (the Model tab's test) and ``explain``, which turns
any client or network error into a ``ModelServerError`` that says what to check. The LLM itself is
``docmind.model.server_llm.ServerLLM``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from docmind.config import Settings
from docmind.model.errors import ModelError

log = logging.getLogger(__name__)

DEFAULT_CONTEXT_WINDOW = 32768
"""The context window when neither the server's model info nor ``llm_context_window`` gives one."""
CONNECT_ATTEMPTS = 3
"""A refused or dropped connection is tried this many times before the answer starts streaming."""
CONNECT_TIMEOUT_SECONDS = 10.0
_CONTEXT_KEYS = ("max_model_len", "context_length", "context_window", "n_ctx", "max_context_length")
"""Where servers put a model's context window in ``/v1/models`` (vLLM, LM Studio, llama.cpp's ``meta``)."""


class ModelServerError(ModelError):
    """The model server could not be used; the message says what went wrong and what to check."""


@dataclass(frozen=True)
class ServerInfo:
    """What ``probe`` learned from a server: its models and the chosen one's context window."""

    base_url: str
    models: list[str]
    model: str
    context_window: int | None


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for an ``openai`` client of ``settings.llm_base_url``: its key, our timeouts, no
    retries of its own. Raises ``ModelServerError`` when no server is set."""
    import openai

    if not settings.llm_base_url:
        raise ModelServerError("No model server is set: give its URL (DOCMIND_LLM_BASE_URL or the Model tab).")
    return {
        "base_url": settings.llm_base_url.rstrip("/"),
        "api_key": settings.llm_api_key or "none",  # the client insists on a key; servers without keys ignore it
        "max_retries": 0,  # connection retries are ours (tenacity), and never once the answer streams
        "timeout": openai.Timeout(settings.llm_timeout_seconds, connect=CONNECT_TIMEOUT_SECONDS),
    }


def explain(error: Exception, settings: Settings) -> ModelServerError:
    """Turn an ``openai`` or network error into a message that says what to check."""
    import httpx
    import openai

    url = settings.llm_base_url
    if isinstance(error, ModelServerError):
        return error
    if isinstance(error, (openai.APITimeoutError, httpx.TimeoutException)):
        return ModelServerError(f"The model server at {url} did not answer within {settings.llm_timeout_seconds:.0f} s. "
                                "It may be overloaded or the model too large for it; try again, or raise "
                                "llm_timeout_seconds.")
    if isinstance(error, (openai.APIConnectionError, httpx.TransportError)):
        return ModelServerError(f"The model server at {url} cannot be reached or closed the connection "
                                f"({_cause(error)}). Check that it is running and that the URL is right.")
    if isinstance(error, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return ModelServerError(f"The model server at {url} refused the API key (HTTP {error.status_code}). "
                                "Check the key on the Model tab (or DOCMIND_LLM_API_KEY).")
    if isinstance(error, openai.NotFoundError):
        return ModelServerError(f"The model server at {url} answered 404 Not Found ({_detail(error)}). Check the "
                                "URL (it usually ends in /v1) and the model name.")
    if isinstance(error, openai.APIStatusError):
        return ModelServerError(f"The model server at {url} refused the request (HTTP {error.status_code}: "
                                f"{_detail(error)}). Check the model name and the server's log.")
    return ModelServerError(f"The model server at {url} sent something DocMind cannot read ({error}). "
                            "Check that the URL points at an OpenAI-compatible /v1 API.")


def _cause(error: BaseException) -> str:
    while error.__cause__ is not None:
        error = error.__cause__
    return str(error) or type(error).__name__


def _detail(error: Any) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") or inner.get("detail") if isinstance(inner, dict) else inner
        return str(message or body)[:300]
    return str(getattr(error, "message", error))[:300]


def retrying() -> Any:
    """Bounded, jittered retries of a connection that could not be made (never of an HTTP answer)."""
    import openai
    from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

    def is_connection(error: BaseException) -> bool:
        return isinstance(error, openai.APIConnectionError) and not isinstance(error, openai.APITimeoutError)

    return Retrying(retry=retry_if_exception(is_connection), stop=stop_after_attempt(CONNECT_ATTEMPTS),
                    wait=wait_random_exponential(multiplier=0.5, max=4), reraise=True,
                    before_sleep=lambda state: log.warning("model server connection failed (attempt %d): %s",
                                                           state.attempt_number, state.outcome.exception()))


def async_retrying() -> Any:
    from tenacity import AsyncRetrying

    sync = retrying()
    return AsyncRetrying(retry=sync.retry, stop=sync.stop, wait=sync.wait, reraise=True, before_sleep=sync.before_sleep)


def probe(settings: Settings) -> ServerInfo:
    """Ask the server for its models (``GET /v1/models``) and check the chosen one is among them.

    ``settings.llm_model`` empty picks the first model listed. Raises ``ModelServerError``.
    """
    import openai

    client = openai.OpenAI(**client_options(settings))
    try:
        for attempt in retrying():
            with attempt:
                page = client.models.list()
        listed = list(page.data)
    except Exception as error:
        raise explain(error, settings) from error
    finally:
        client.close()
    names = [m.id for m in listed]
    model = settings.llm_model or (names[0] if names else "")
    if not model:
        raise ModelServerError(f"The model server at {settings.llm_base_url} lists no models. Load one on the server.")
    if names and model not in names:
        raise ModelServerError(f"The model server at {settings.llm_base_url} has no model named {model!r}; it "
                               f"offers: {', '.join(names)}. Pick one on the Model tab (or set DOCMIND_LLM_MODEL).")
    entry = next((m for m in listed if m.id == model), None)
    return ServerInfo(settings.llm_base_url or "", names, model, _context_window(entry))


def _context_window(entry: Any) -> int | None:
    if entry is None:
        return None
    extra = dict(entry.model_extra or {})
    extra.update(extra.get("meta") or {})
    return next((int(extra[key]) for key in _CONTEXT_KEYS if isinstance(extra.get(key), int) and extra[key] > 0), None)


def check_connection(settings: Settings) -> str:
    """The Model tab's "Test connection": list the models, then ask the chosen one for one token.

    Returns a one-line success message; raises ``ModelServerError`` with what to check.
    """
    import openai

    info = probe(settings)
    client = openai.OpenAI(**client_options(settings))
    try:
        client.chat.completions.create(model=info.model, messages=[{"role": "user", "content": "Say OK."}],
                                       max_tokens=1)
    except Exception as error:
        raise explain(error, settings) from error
    finally:
        client.close()
    return f"Connected: {info.base_url} answers with {info.model} ({len(info.models)} model(s) offered)."
