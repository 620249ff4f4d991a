"""The DocMind app: Gradio Blocks over the agent, cache and storage layers.

``serve`` imports gradio only after it has set the offline, private environment Gradio reads at import.
"""

from docmind.ui.launch import RunningApp, serve

__all__ = ["RunningApp", "serve"]
