"""One lock for loading model weights in this process.

While transformers loads a model it changes torch's process-wide default dtype. A second load at the
same moment (the chat model and the embedding model, say) then gets weights of mixed dtypes, and every
later generation fails with "expected m1 and m2 to have the same dtype". That was seen in the app when
the first upload's embedding load overlapped the model load.
"""

from __future__ import annotations

import threading

weights_load_lock = threading.RLock()
"""Held while any model's weights are loaded (or quantized) in this process."""
