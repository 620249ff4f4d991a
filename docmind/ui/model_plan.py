"""The Model tab's "on this computer" paragraph, in plain words.

While the first load measures the formats: "Tuning for this computer…" with how far it is. Once the
model is ready: how fast it answers here and in which format (from the plan measured on this computer),
what the quality check found, and how long the model may think before it answers.
"""

from __future__ import annotations

from docmind.model.hardware import Hardware
from docmind.model.speed import WORDS_PER_TOKEN
from docmind.model.status import model_status
from docmind.model.tuning import TUNING_MESSAGE, progress
from docmind.ui.context import AppContext, ModelPhase

WEIGHTS = {"int4-weight": "int4", "int8-weight": "int8", "int8-dynamic": "int8"}
"""What a quantization is called on screen; unquantized weights go by their dtype (bf16, float32)."""
DTYPES = {"bfloat16": "bf16", "float16": "fp16", "float32": "float32"}


def weights_name(dtype: str, quantization: str) -> str:
    return WEIGHTS.get(quantization) or DTYPES.get(dtype, dtype)


def _words_per_second(decode_tok_s: float) -> str:
    words = decode_tok_s * WORDS_PER_TOKEN
    return f"{words:.0f}" if words >= 10 else f"{words:.1f}"


def plan_markdown(context: AppContext, hardware: Hardware) -> str:
    """The paragraph for the model's state now ("" when there is nothing to say)."""
    tuning = progress()
    if tuning.active:
        return (f"⟳ **{TUNING_MESSAGE}** {tuning.fraction:.0%} done. DocMind is measuring which way of running "
                "the model answers fastest here; this happens once.")
    if context.model.status.phase is not ModelPhase.READY or context.settings.llm_base_url:
        return ""
    status = model_status(context.settings, hardware)
    lines = []
    plan = status.measured_plan
    if plan:
        lines.append(f"Answers at about **{_words_per_second(plan['decode_tok_s'])} words per second** on this "
                     f"computer; uses {weights_name(plan['dtype'], plan['quantization'])} weights.")
    quality = status.quality
    if quality:
        verdict = "✓ good enough" if quality["passed"] else f"⚠ below the {quality['min_agreement']:.0%} wanted"
        lines.append(f"Quality check: the {weights_name('', quality['quantization'])} weights pick the same next word "
                     f"as the uncompressed model {quality['top1_agreement']:.0%} of the time ({verdict}).")
    for rejected in plan["rejected"] if plan else []:
        lines.append(f"{weights_name('', rejected['quantization'])} weights were set aside: they agreed only "
                     f"{rejected['top1_agreement']:.0%} of the time.")
    budget = status.thinking_budget
    if status.thinks is not False and budget:
        lines.append("Answers without thinking first." if budget["tokens"] == 0 else
                     f"Thinks for up to about {budget['seconds']:.0f} s before answering ({budget['tokens']} tokens).")
    return "\n\n".join(lines)
