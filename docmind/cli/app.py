"""The app itself and the data dir: ``serve``/``app``, ``doctor`` and ``backup``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from docmind import __version__
from docmind.cli.common import (
    CommandError,
    add_command,
    current_database,
    current_settings,
    emit,
)

log = logging.getLogger("docmind")


def cmd_doctor(args: argparse.Namespace) -> int:
    settings = current_settings()
    db = current_database()
    count = lambda table: db.read(f"SELECT COUNT(*) FROM {table}")[0][0]  # noqa: E731
    report = {
        "version": __version__,
        "data_dir": str(settings.data_dir),
        "journal_mode": db.read("PRAGMA journal_mode")[0][0],
        "integrity": db.read("PRAGMA integrity_check")[0][0],
        "documents": count("documents"),
        "chunks": count("chunks"),
        "sessions": count("sessions"),
        "model": str(settings.model_path or settings.model),
        "device": _device_summary(),
    }
    emit(report, args.json, lambda r: "\n".join(f"{k:>13}: {v}" for k, v in r.items()))
    return 0 if report["integrity"] == "ok" else 1


def _device_summary() -> str:
    try:
        from docmind.model.hardware import detect_hardware
    except ImportError:
        return "unknown"
    return detect_hardware().summary


def cmd_backup(args: argparse.Namespace) -> int:
    dest = current_database().backup(Path(args.dest).expanduser())
    print(f"Backed up to {dest}", file=sys.stderr)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from docmind.ui import serve
    from docmind.ui.launch import LoginRequiredError
    from docmind.ui.launch_guard import AppInstanceLock, available_port, log_to_file

    settings = current_settings()
    instance = AppInstanceLock(settings.data_dir)  # first: it says plainly when the data dir is not writable
    if not instance.acquire():  # one app per data dir: show the one that runs
        running = instance.running_instance()
        if running is None:
            raise CommandError("DocMind is still starting for this data dir; wait a moment and start it again.")
        print(f"DocMind is already running at {running.url}", file=sys.stderr, flush=True)
        if not args.no_browser:
            import webbrowser

            webbrowser.open(running.url)
        return 0
    with instance:
        log_path = log_to_file(settings.data_dir)
        host = args.host or settings.host
        try:
            app = serve(
                settings,
                host=host,
                port=available_port(host, args.port if args.port is not None else settings.port),
                open_browser=not args.no_browser,
            )
        except LoginRequiredError as error:  # serving a network without user accounts
            raise CommandError(str(error)) from error
        except Exception:
            log.exception("DocMind could not start")
            raise
        instance.publish(app.url)
        log.info("DocMind %s is running at %s", __version__, app.url)
        print(f"DocMind is running at {app.url}  (press Ctrl+C to stop; log: {log_path})", file=sys.stderr, flush=True)
        app.wait()
    return 0


def add_app_commands(sub: Any) -> None:
    add_command(sub, "doctor", cmd_doctor, "check the data dir and database")
    for name in ("serve", "app"):
        serve = add_command(sub, name, cmd_serve, "start the DocMind app in your browser", json_flag=False)
        serve.add_argument("--host", help="address to listen on (default 127.0.0.1; anything else exposes your data)")
        serve.add_argument("--port", type=int, help="port to listen on (default: a free one)")
        serve.add_argument("--no-browser", action="store_true", help="do not open the browser")
    backup = add_command(sub, "backup", cmd_backup, "copy the database while DocMind runs", json_flag=False)
    backup.add_argument("dest", help="file or folder to write the backup to")
