"""``docmind model download|status|verify``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from docmind.cli.common import (
    CommandError,
    add_command,
    add_group,
    current_settings,
    emit,
    one_line_errors,
)

model_errors = one_line_errors("docmind.model.errors:ModelError")
"""Model-layer failures (no model, damaged files, no disk, network) are reported as one line (exit 1)."""


def _status_text(status: dict) -> str:
    lines = [f"{k:>18}: {v}" for k, v in status.items() if k not in ("measured_plan", "quality", "thinking_budget")]
    plan = status["measured_plan"]
    if plan:
        lines.append(f"{'measured plan':>18}: {plan['dtype']} {plan['quantization']}, {plan['threads']} threads: "
                     f"{plan['decode_tok_s']} tok/s writing, {plan['prefill_tok_s']} tok/s reading, about "
                     f"{plan['answer_seconds']:.0f} s for a typical question (measured {plan['measured_at']} "
                     f"on {plan['cpu']} in {plan['tuning_seconds']} s)")
    quality = status["quality"]
    if quality:
        lines.append(f"{'quality':>18}: {quality['quantization']} picks the unquantized model's next token "
                     f"{quality['top1_agreement']:.0%} of the time (mean KL {quality['mean_kl']}; "
                     f"threshold {quality['min_agreement']:.0%})")
    budget = status["thinking_budget"]
    lines.append(f"{'thinking budget':>18}: {budget['tokens']} tokens, about {budget['seconds']:.0f} s at "
                 f"{budget['decode_tok_s']} tok/s ({'measured' if budget['measured'] else 'estimated'})")
    return "\n".join(lines)


def cmd_model_status(args: argparse.Namespace) -> int:
    from docmind.model.status import model_status

    status = model_status(current_settings()).to_dict()
    emit(status, args.json, _status_text)
    return 0


def cmd_model_download(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from docmind.model.download import download_model
    from docmind.model.registry import resolve_model

    choice = resolve_model(current_settings())
    if choice.local:
        raise CommandError(f"DOCMIND_MODEL_PATH points at {choice.path}; there is nothing to download.")
    bar = tqdm(unit="B", unit_scale=True, unit_divisor=1024, desc=choice.name, file=sys.stderr, disable=None)

    def progress(p: Any) -> None:
        bar.total = p.bytes_total
        bar.n = p.bytes_done
        bar.set_postfix_str(p.file, refresh=False)
        bar.refresh()

    try:
        report = download_model(choice.name, choice.path, revision=args.revision, progress=progress)
    finally:
        bar.close()
    emit(vars(report), args.json, lambda r: f"Downloaded {r['model']} to {r['path']} "
         f"({r['bytes_downloaded']} bytes fetched, {r['bytes_resumed']} already on disk).")
    return 0


def cmd_model_verify(args: argparse.Namespace) -> int:
    from docmind.model.download import verify_model
    from docmind.model.registry import resolve_model

    choice = resolve_model(current_settings())
    report = verify_model(choice.name, choice.path, repair=not choice.local)
    emit(report.to_dict(), args.json, lambda r: "\n".join(
        [f"{'ok' if f['ok'] else 'BAD'}  {f['name']}" + (f"  ({f['problem']})" if f["problem"] else "")
         for f in r["files"]] + [f"{r['model']}: " + ("all files verified" if r["ok"] else
                                 "damaged; run `docmind model download` to fetch the bad files again")]))
    return 0 if report.ok else 1


def add_model_commands(sub: Any) -> None:
    actions = add_group(sub, "model", "download, check and verify the language model", "model_command")
    for name, handler, help in (
        ("status", cmd_model_status, "which model is chosen, whether it is on disk, what this machine suits"),
        ("download", cmd_model_download, "download the chosen model (resumes an interrupted download)"),
        ("verify", cmd_model_verify, "re-check the model files' sizes and checksums"),
    ):
        p = add_command(actions, name, model_errors(handler), help)
        if name == "download":
            p.add_argument("--revision", default="main", help="hub branch, tag or commit (default main)")
