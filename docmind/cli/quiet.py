"""Keep the chatter of the libraries DocMind drives off the user's terminal.

Without this, ``docmind ingest`` prints pypdf's complaints about a file it already reports as damaged and
transformers' weight-loading progress bars.
``docmind -v`` keeps all of it.
"""

from __future__ import annotations

import logging
import os

NOISY_LOGGERS = ("pypdf", "torchao", "torch.utils._pytree", "transformers", "sentence_transformers")


def quiet_third_party_libraries() -> None:
    """Call before torch, transformers or huggingface_hub are imported: some read these settings then."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # DocMind draws its own bars
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
