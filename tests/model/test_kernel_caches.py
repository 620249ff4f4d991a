"""Prompts of ever-new lengths leave the process no bigger: torch's CPU kernel caches are bounded.

Each new prompt length makes oneDNN build bf16 kernels that torch caches (about half a MB each, 1,024
per cache by default); a chat server grew about 5 MB per turn from them. Measured in a process of its
own, since the caches' sizes are fixed when the process first builds a kernel.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
import psutil
from docmind.config import load_settings
from docmind.model.engine import GenerationEngine, GenerationRequest
from docmind.model.loading import load_model

loaded = load_model(load_settings(model_path=sys.argv[1], quantization="none"))
assert str(loaded.model.dtype) == "torch.bfloat16", loaded.model.dtype
engine = GenerationEngine(loaded.model, loaded.tokenizer, prefix_cache_bytes=0)
ids = engine.tokenize("DocMind reads your documents and answers questions about them. " * 40)

def prompts(lengths):
    for n in lengths:
        engine.generate(GenerationRequest(ids[:n], max_new_tokens=1, temperature=0.0, stop_token_ids=(-1,)))

process = psutil.Process()
prompts(range(20, 40))
warm = process.memory_info().rss
prompts(range(40, 140))
print(json.dumps({"warm_mb": warm / 1e6, "end_mb": process.memory_info().rss / 1e6}))
engine.shutdown()
"""


def test_new_prompt_lengths_do_not_grow_the_process(tiny_model_dir: Path) -> None:
    env = {key: value for key, value in os.environ.items()
           if key not in ("LRU_CACHE_CAPACITY", "ONEDNN_PRIMITIVE_CACHE_CAPACITY")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-c", PROBE, str(tiny_model_dir)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    memory = json.loads(proc.stdout.strip().splitlines()[-1])
    # 100 new lengths x 5 linear shapes: +284 MB with torch's default caches, +15 MB bounded (measured)
    assert memory["end_mb"] - memory["warm_mb"] < 60, memory
