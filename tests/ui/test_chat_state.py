"""The Chat tab's per-page bookkeeping stays bounded: a page's turn is forgotten soon after it ends."""

from __future__ import annotations

import asyncio

from docmind.config import load_settings
from docmind.ui.chat import Chatter


async def test_page_turns_are_forgotten_once_a_stop_could_no_longer_ask(data_dir):
    chatter = Chatter(load_settings(data_dir=data_dir))
    for i in range(50):
        chatter.end(f"page{i}", chatter.track(f"page{i}", f"session{i}"), keep_seconds=0.2)
    assert await chatter.settled("page7") == "session7"  # a Stop right after the end still finds the session
    await asyncio.sleep(0.5)
    assert [await chatter.settled(f"page{i}") for i in range(50)] == [""] * 50  # nothing kept for 50 pages


async def test_an_old_turn_never_forgets_the_newer_turn_of_its_page(data_dir):
    chatter = Chatter(load_settings(data_dir=data_dir))
    chatter.end("page", chatter.track("page", "first"), keep_seconds=0.05)
    newer = chatter.track("page", "second")
    await asyncio.sleep(0.2)
    chatter.end("page", newer, keep_seconds=60)
    assert await chatter.settled("page") == "second"
