"""Viewer benchmark: click-to-highlight time in Debian Chromium, and the support check's cost. Prints one JSON document.

- click_to_highlight: a 300-page PDF (made here) is ingested into a temp data dir and served by a real
  ``docmind serve``; in the app page, a click on a citation link to page 250 is timed until the viewer panel
  shows that page with the passage's highlight visible. Reported: the first click (nothing cached; after
  pointing at the link for 0.5 s, which starts loading it; and 5 s after the answer appeared, by when the
  panel has loaded the chat's citation), the
  median click on a PDF not open yet (the viewer page loads anew, PDF.js comes from the browser cache), and
  the median click on a PDF already open in the (closed) panel. Goal: under 1.5 s.
- support_check: ``check_support`` on a 500-word answer citing 10 passages of about 150 words (median of
  many runs). Goal: under 20 ms.

Usage: .venv/bin/python tests/benchmarks/bench_viewer.py [--clicks N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

PAGES = 300
CITED_PAGE = 250
GOAL_CLICK_S = 1.5
GOAL_CHECK_MS = 20.0
SETTLE_S = 5.0
SENTENCE = "The emergency valve on deck four must be tested by the duty engineer before every voyage."
WORDS = ("valve pump engine deck crew harbour voyage cargo ballast anchor rudder engineer captain safety "
         "inspection pressure turbine schedule report weather").split()


def _page_text(number: int, rng: random.Random) -> str:
    if number == CITED_PAGE:
        return SENTENCE + " " + " ".join(rng.choices(WORDS, k=60))
    return f"Page {number}. " + " ".join(rng.choices(WORDS, k=80))


def click_to_highlight(clicks: int) -> dict:
    from playwright.sync_api import sync_playwright

    from docmind.config import load_settings
    from docmind.storage import open_database
    from docmind.ui.viewer import viewer_url
    from tests.cache.files import make_pdf
    from tests.ui.conftest import CHROMIUM, CHROMIUM_FLAGS, start_server, stop_server

    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="bench-viewer-") as tmp:
        base = Path(tmp)
        pdf = make_pdf(base / "handbook.pdf", [_page_text(n, rng) for n in range(1, PAGES + 1)])
        settings = load_settings(data_dir=base / "data")
        from docmind.cache.ingest import Ingestor

        ingestor = Ingestor(settings)
        report = ingestor.ingest([pdf])
        ingestor.db.close()
        assert not report.files_failed, report.files_failed
        db = open_database(settings.db_path)
        [(chunk,)] = db.read("SELECT text FROM chunks WHERE source = ? AND page = ? LIMIT 1", (str(pdf), CITED_PAGE))
        db.close()
        link = viewer_url(str(pdf), CITED_PAGE, chunk)
        server = start_server(settings.data_dir, base / "server.log", env={"HF_HUB_OFFLINE": "1"})
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)

                def fresh_page(in_chat: bool = False):
                    """A new page (empty cache) with a citation link: in the chat (the panel preloads it once the
                    chat settles), or outside it (nothing is loaded before the click)."""
                    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
                    page.set_default_timeout(60_000)
                    page.goto(server.url)
                    page.get_by_text("Recommended for this computer").wait_for()  # no model: it opens on Model
                    page.get_by_role("tab", name="Chat", exact=True).click()
                    page.evaluate("""([href, inChat]) => { const a = document.createElement('a');
                        a.id = 'bench-citation'; a.href = href; a.textContent = '[1]';
                        (inChat ? document.querySelector('#docmind-chatbot') : document.body).prepend(a); }""",
                                  [link, in_chat])
                    return page

                def click(page, href: str, point_first_s: float = 0.0) -> float:
                    page.evaluate("(href) => { document.querySelector('#bench-citation').href = href; }", href)
                    if point_first_s:
                        page.locator("#bench-citation").hover()
                        time.sleep(point_first_s)
                    started = time.perf_counter()
                    page.locator("#bench-citation").click()
                    page.frame_locator("#docmind-viewer-frame").locator(
                        f"body[data-page='{CITED_PAGE}'][data-ready=yes] mark.docmind-highlight").first.wait_for(
                        state="visible")
                    return time.perf_counter() - started

                def close(page) -> None:
                    page.get_by_role("button", name="Close the document viewer").click()

                first = click(fresh_page(), link)  # PDF.js, its worker and the PDF all loaded for the first time
                first_pointed = click(fresh_page(), link, point_first_s=0.5)  # pointed at for half a second first
                settled = fresh_page(in_chat=True)
                time.sleep(SETTLE_S)  # the user reads the answer; the panel loads its citation meanwhile
                first_settled = click(settled, link)
                page = fresh_page()
                click(page, link)
                open_again = []  # another citation of the PDF open in the (closed) panel
                reload = []  # a PDF not open yet (the panel's page is loaded anew); PDF.js is in the browser cache
                for n in range(clicks):
                    close(page)
                    open_again.append(click(page, f"{link}&n={n}"))
                    close(page)
                    page.evaluate("() => { const f = document.querySelector('#docmind-viewer-frame'); "
                                  "f.removeAttribute('data-url'); f.src = 'about:blank'; }")
                    reload.append(click(page, f"{link}&n={n}"))
                frame = page.frame_locator("#docmind-viewer-frame")
                in_page_ms = frame.locator("body").get_attribute("data-ready-ms")
                highlighted = " ".join(frame.locator("mark.docmind-highlight").all_inner_texts())
                pdf_bytes = pdf.stat().st_size
                browser.close()
        finally:
            stop_server(server)
    return {"pdf_pages": PAGES, "page": CITED_PAGE, "pdf_bytes": pdf_bytes, "goal_s": GOAL_CLICK_S,
            "first_click_s": round(first, 3), "first_click_pointed_at_first_s": round(first_pointed, 3),
            f"first_click_{SETTLE_S:g}s_after_the_answer_s": round(first_settled, 3),
            "pdf_not_yet_open_median_s": round(statistics.median(reload), 3),
            "pdf_already_open_median_s": round(statistics.median(open_again), 3),
            "last_load_in_page_ms": int(in_page_ms) if in_page_ms else None, "clicks_each": clicks,
            "sentence_highlighted": SENTENCE in " ".join(highlighted.split())}


def support_check(runs: int = 200) -> dict:
    from docmind.agent.citations import TurnPassages, check_support

    rng = random.Random(11)
    vocabulary = [f"{word}{n}" for word in WORDS for n in range(20)]
    passages = TurnPassages()
    texts = [" ".join(rng.choices(vocabulary, k=150)) for _ in range(10)]
    for number, text in enumerate(texts, start=1):
        passages.add(f"/docs/{number}.pdf", number, text, 1.0)
    sentences = []
    while sum(len(s.split()) for s in sentences) < 500:
        number = rng.randint(1, 10)
        source = texts[number - 1].split() if rng.random() < 0.7 else [f"other{n}" for n in range(20)]
        sentences.append(" ".join(rng.sample(source, 15)) + f" [{number}].")
    answer = " ".join(sentences)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        report = check_support(answer, passages)
        times.append((time.perf_counter() - started) * 1000)
    return {"answer_words": len(answer.split()), "passages": 10, "claims": len(report.claims),
            "unsupported": len(report.unsupported), "median_ms": round(statistics.median(times), 3),
            "max_ms": round(max(times), 3), "goal_ms": GOAL_CHECK_MS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    result = {"support_check": support_check(), "click_to_highlight": click_to_highlight(args.clicks),
              "load_average": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
