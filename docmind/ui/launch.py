"""Start the DocMind app: a private, offline Gradio server on 127.0.0.1 that opens the browser.

Gradio reads ``GRADIO_TEMP_DIR`` and the analytics switch when it is imported, so
:func:`prepare_environment` runs before anything imports gradio.
"""

from __future__ import annotations

import atexit
import ipaddress
import logging
import os
import shutil
import tempfile
import threading
import webbrowser
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from docmind.ui.launch_guard import available_port

if TYPE_CHECKING:
    import gradio as gr

    from docmind.config import Settings
    from docmind.ui.context import AppContext

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
CONCURRENT_EVENTS = 8
BACKGROUND_START_SECONDS = 5.0
"""The model starts loading at the first page load, or this long after start-up if no page opens."""


@dataclass
class RunningApp:
    """A started server: its URL, the Blocks, and the shared context."""

    url: str
    host: str
    port: int
    demo: gr.Blocks
    context: AppContext

    def wait(self) -> None:
        """Block until Ctrl-C, then stop the server."""
        try:
            self.demo.block_thread()
        finally:
            self.close()

    def close(self) -> None:
        self.demo.close()
        self.context.watcher.stop()


def is_loopback(host: str) -> bool:
    """True when ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LoginRequiredError(RuntimeError):
    """DocMind was asked to serve a network without user accounts."""


def check_host(settings: Settings, host: str) -> bool:
    """Whether logins are on (the data dir has user accounts). Serving beyond loopback without them is
    refused with ``LoginRequiredError``."""
    from docmind.ui.auth import logins_enabled

    logins = logins_enabled(settings)
    if not is_loopback(host) and not logins:
        raise LoginRequiredError(
            f"Refusing to serve on {host} without logins: anyone on the network could read your documents and "
            "chats. Add a user first (`docmind users add NAME`), or use --host 127.0.0.1."
        )
    return logins


def prepare_environment() -> Path:
    """Turn off Gradio's analytics and give this app a private temp folder (mode 0700) for uploads."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    temp_dir = Path(tempfile.mkdtemp(prefix="docmind-ui-"))
    temp_dir.chmod(0o700)
    os.environ["GRADIO_TEMP_DIR"] = str(temp_dir)
    atexit.register(shutil.rmtree, temp_dir, ignore_errors=True)
    return temp_dir


def serve(
    settings: Settings,
    *,
    host: str = LOOPBACK,
    port: int = 0,
    open_browser: bool = True,
) -> RunningApp:
    """Start the app in the background and return once the page is served.

    The model loads in a background thread after the server is up; the page shows that it is loading.
    """
    logins = check_host(settings, host)
    if logins:
        log.warning("Logins are on, but DocMind's traffic (passwords included) is not encrypted: put it behind a "
                    "TLS reverse proxy such as Caddy or nginx (see the README) unless the network is trusted.")
    temp_dir = prepare_environment()
    import gradio as gr
    from starlette.middleware import Middleware

    from docmind.ui.auth import Accounts, LoginGate

    from docmind.ui.app import build_app
    from docmind.ui.context import AppContext

    context = AppContext.create(settings, upload_dir=temp_dir)
    demo = build_app(context)
    demo.queue(default_concurrency_limit=CONCURRENT_EVENTS)
    port = port or available_port(host, 0)
    _, local_url, _ = demo.launch(
        server_name=host,
        server_port=port,
        prevent_thread_lock=True,
        inbrowser=False,
        share=False,
        quiet=True,
        show_error=False,
        max_file_size=f"{int(settings.max_file_size_mb)}mb",
        theme=_theme(gr),
        css=_CSS,
        i18n=gr.I18n(en=_SCREEN_READER_WORDS),
        head=_ACCESSIBILITY_SCRIPT + _VIEWER_SCRIPT,
        footer_links=[],
        mcp_server=False,
        ssr_mode=False,
        pwa=False,
        enable_monitoring=False,
        auth=Accounts(settings) if logins else None,
        auth_message="Log in with the name and password your DocMind administrator gave you.",
        app_kwargs={"middleware": [Middleware(LoginGate, session_seconds=settings.login_session_seconds)]}
        if logins else None,
    )
    from docmind.ui import exports, viewer

    viewer.add_routes(demo.app, context)
    exports.add_routes(demo.app, context)
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/"
    log.info("DocMind is running at %s (gradio reports %s)", url, local_url)
    background = threading.Timer(BACKGROUND_START_SECONDS, context.started)  # when no page opens (scripts)
    background.daemon = True
    background.start()
    if open_browser:
        webbrowser.open(url)
    return RunningApp(url=url, host=host, port=port, demo=demo, context=context)


def _theme(gr) -> gr.themes.Base:
    """Gradio's Soft theme, with text on its indigo dark enough to read (WCAG AA contrast, 4.5:1)."""
    return gr.themes.Soft().set(
        button_primary_background_fill="*primary_600",
        button_primary_background_fill_hover="*primary_700",
        checkbox_label_background_fill_selected="*primary_600",
        block_label_text_color="*primary_700",
        block_title_text_color="*primary_700",
        body_text_color_subdued="*neutral_600",
    )


_SCREEN_READER_WORDS = {"common.complete": "Done"}
"""Gradio 6.31 announces each finished event to screen readers with an i18n key it has no English for."""

_ACCESSIBILITY_SCRIPT = """<script>
// Gradio 6.31's Chatbot draws a collapsible block (thinking, sources) as a role=button title holding an
// unnamed arrow button: screen readers meet a nameless button inside a button (axe: button-name,
// nested-interactive). The title already toggles the block, so the arrow becomes a picture: hidden from
// screen readers, out of the Tab order (disabled), and clicks on it reach the title.
new MutationObserver(() => {
  for (const arrow of document.querySelectorAll('[role=button] button[aria-label=""]')) {
    arrow.removeAttribute('aria-label');
    arrow.setAttribute('aria-hidden', 'true');
    arrow.disabled = true;
    arrow.style.pointerEvents = 'none';
  }
}).observe(document.documentElement, {childList: true, subtree: true});
</script>"""

_VIEWER_SCRIPT = '<script src="/docmind/static/panel.js" defer></script>'
"""Opens citations and the Documents tab's "View" in a side panel (see docmind/ui/viewer.py)."""

_CSS = """
#docmind-status { font-size: 0.85em; opacity: 0.85; }
#docmind-status p { margin: 0; }
.docmind-search-label { font-weight: 600; }
#docmind-viewer-panel { position: fixed; top: 0; right: 0; bottom: 0; z-index: 1000; width: min(760px, 60vw);
  display: flex; flex-direction: column; background: var(--background-fill-primary);
  border-left: 1px solid var(--border-color-primary); box-shadow: -6px 0 24px rgb(0 0 0 / 0.15); }
#docmind-viewer-panel[hidden] { visibility: hidden; pointer-events: none; }  /* laid out: its page draws at size */
@media (max-width: 800px) { #docmind-viewer-panel { width: 100vw; } }
.docmind-viewer-bar { display: flex; gap: 1em; align-items: center; padding: 0.4em 0.8em;
  border-bottom: 1px solid var(--border-color-primary); }
.docmind-viewer-heading { font-weight: 600; flex: 1; }
#docmind-viewer-close { font-size: 1.1em; padding: 0.2em 0.6em; border-radius: 6px; cursor: pointer;
  border: 1px solid var(--border-color-primary); background: var(--background-fill-secondary); color: inherit; }
#docmind-viewer-frame { flex: 1; width: 100%; border: 0; }
a.docmind-cite { text-decoration: none; font-weight: 600; color: var(--primary-700); background: var(--primary-100);
  border-radius: 4px; padding: 0 0.3em; }
a.docmind-cite:hover, a.docmind-cite:focus-visible { text-decoration: underline; }
.docmind-unsupported { color: #b45309; cursor: help; font-size: 0.8em; vertical-align: super; }
.docmind-sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%);
  white-space: nowrap; }
"""
