"""Small text helpers shared by the engine, the thinking parser and the agent's stream splitter."""

from __future__ import annotations


def partial_suffix(text: str, marker: str) -> int:
    """Length of the longest end of ``text`` that is a proper prefix of ``marker``.

    A streamed text must hold back that many characters: the next delta may complete the marker.
    """
    for size in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:size]):
            return size
    return 0
