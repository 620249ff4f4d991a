"""Ingest benchmark: cold ingest against stock LlamaIndex, unchanged re-ingest, one-file edit, retrieval
quality per embedding backend, OCR speed, and a 1,000-page PDF's time and peak memory.

Run: ``.venv/bin/python tests/benchmarks/bench_ingest.py [--files 330] [--big-pages 1000] [--keep DIR]``.
Prints one JSON document. A generated corpus of mixed file types (PDF, DOCX, PPTX, HTML, Markdown,
reStructuredText, text, CSV) carries planted facts; questions about them are scored by recall@5 and
MRR@10 per category. In the same run and on the same corpus: stock LlamaIndex (``IngestionPipeline``
with ``SentenceSplitter(512)`` and ``HuggingFaceEmbedding`` over the same MiniLM, no cache) and DocMind
with each embedding backend (``torch``, the old one, and ``onnx-int8``), all timed cold with the model
already loaded, on the same extracted text. The 1,000-page PDF is generated, ingested by a real
``docmind ingest`` process, and its peak RSS compared with that of the same command on a one-page PDF.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests.cache.files import make_docx, make_html, make_pdf, make_pptx  # noqa: E402

DOMAINS = {
    "garden": (["gardener", "volunteer", "grower", "neighbour"], ["waters", "prunes", "inspects", "mulches", "plants"],
               ["tomato bed", "compost heap", "rose hedge", "seed tray", "greenhouse", "orchard row"],
               ["early", "shaded", "sandy", "sheltered", "overgrown", "fertile"]),
    "workshop": (["mechanic", "apprentice", "fitter", "engineer"], ["adjusts", "lubricates", "calibrates", "replaces"],
                 ["drive belt", "bearing housing", "hydraulic line", "control panel", "pressure valve", "gearbox"],
                 ["worn", "noisy", "refurbished", "sealed", "misaligned", "spare"]),
    "kitchen": (["cook", "baker", "pastry chef", "kitchen porter"], ["whisks", "simmers", "seasons", "kneads", "chills"],
                ["stock pot", "dough", "custard", "braising liquid", "sourdough starter", "spice blend"],
                ["fragrant", "smooth", "thick", "tangy", "golden", "delicate"]),
    "office": (["manager", "clerk", "analyst", "auditor"], ["reviews", "files", "approves", "archives", "drafts"],
               ["expense report", "quarterly budget", "supplier contract", "meeting agenda", "travel request"],
               ["pending", "revised", "urgent", "confidential", "overdue", "annual"]),
    "sailing": (["skipper", "deckhand", "navigator", "crew member"], ["trims", "reefs", "coils", "checks", "hoists"],
                ["mainsail", "jib sheet", "anchor chain", "bilge pump", "tiller", "mooring line"],
                ["salty", "frayed", "windward", "taut", "new", "heavy"]),
    "school": (["teacher", "student", "librarian", "head of year"], ["marks", "explains", "borrows", "presents"],
               ["history essay", "chemistry experiment", "reading list", "timetable", "science fair poster"],
               ["difficult", "creative", "late", "detailed", "collaborative", "short"]),
}
PREPOSITIONS = ["before", "after", "beside", "during", "without", "instead of", "near"]
TIMES = ["on Monday morning", "every fortnight", "after the rain", "before the inspection", "at dusk", "in winter"]

# Topical paragraphs and questions that share (almost) no words with them: vectors should find these,
# BM25 should struggle. The first sentence is the one a relevant passage must contain.
PARAPHRASES = [
    ("Puppies gnaw on sofas and table legs when they are bored or teething. Offer sturdy rubber toys and "
     "praise calm behaviour. Keep shoes out of reach until the habit fades.", "Why does my young dog chew the furniture?"),
    ("Descale the espresso machine every three months with a citric acid solution. Hard water leaves "
     "mineral deposits in the boiler. Rinse the reservoir twice afterwards.", "How often should the coffee maker have its limescale removed?"),
    ("Wooden chopping boards should be oiled monthly so they do not crack. Wash them by hand and let them "
     "dry upright. Never leave them soaking.", "How do I keep a timber cutting board from splitting?"),
    ("Cyclists should fit a bright rear lamp when riding after sunset. Reflective bands on ankles help "
     "drivers notice pedalling motion. A white front beam is required by law.", "What do bike riders need for safety at night?"),
    ("Bread goes stale faster in the refrigerator than at room temperature. Starch recrystallises quickly "
     "in the cold. Freeze slices instead and toast them straight away.", "Does keeping a loaf in the fridge make it dry out quicker?"),
    ("Houseplants with yellowing leaves are often watered too much. Soggy soil starves roots of oxygen. "
     "Let the top layer of compost dry before watering again.", "Why are my indoor plants turning pale?"),
    ("A dripping tap usually needs a new washer rather than a new faucet. Turn off the supply valve under "
     "the sink first. The rubber ring costs very little.", "What fixes a leaky kitchen spigot cheaply?"),
    ("Toddlers sleep better with a consistent evening routine and a dim room. A bath and a story signal "
     "that the day is ending. Screens before bed delay drowsiness.", "How can I help my small child settle down at night?"),
    ("Cast iron pans rust if they are left to soak in the sink. Dry them on a warm hob and wipe a thin "
     "film of oil over the surface.", "Why did my skillet get orange spots after washing?"),
    ("Migrating swallows fly south to Africa when autumn arrives. They cover thousands of kilometres and "
     "return to the same barns each spring.", "Where do these small birds travel when the weather cools?"),
    ("Shin splints are common among runners who increase mileage too quickly. Rest, ice and gradual "
     "training let the tissue along the bone recover.", "Why do my lower legs ache after jogging much more than usual?"),
    ("Frozen water pipes can burst because ice expands as it forms. Insulate exposed pipework and keep "
     "the heating on low during cold spells.", "What happens to plumbing in a hard frost?"),
    ("Printer paper jams are often caused by damp or curled sheets. Store reams flat in a dry cupboard and "
     "fan the stack before loading the tray.", "Why does my office copier keep getting stuck?"),
    ("Honey never spoils because its low moisture prevents bacteria from growing. Jars found in ancient "
     "tombs were still edible. Crystals simply mean it has cooled.", "Can the sweet stuff bees make go off?"),
    ("Loud snoring can be a sign of obstructed breathing during sleep. Pauses and gasps at night deserve "
     "a visit to a doctor. Sleeping on the side may help.", "Is noisy nighttime breathing a health concern?"),
    ("Tyre pressure drops in cold weather, so check it when temperatures fall. Under-inflated tyres wear "
     "faster and waste fuel.", "Should I inflate my car wheels more in winter?"),
    ("Cats knead blankets with their paws as a comforting habit from kittenhood. Purring often accompanies "
     "the rhythmic pushing.", "Why does my feline press its feet on soft things?"),
    ("Solar panels produce less electricity on cloudy days but still generate some. Diffuse light reaches "
     "the cells through thin cloud.", "Do photovoltaic roofs work when it is overcast?"),
    ("Onions make eyes water because cutting them releases an irritating gas. Chilling the bulb first and "
     "using a sharp knife reduce the sting.", "Why do I cry when chopping that vegetable?"),
    ("Rechargeable batteries last longer if they are not fully drained each time. Lithium cells prefer to "
     "stay between a fifth and four fifths charged.", "How do I extend the life of a phone cell?"),
    ("Hiccups can often be stopped by slowly sipping cold water. Holding the breath briefly also calms "
     "the spasms.", "Any trick to end a spasm of the diaphragm?"),
    ("Moths are attracted to wool and can ruin sweaters stored in closets. Cedar blocks and sealed bags "
     "keep the larvae away from knitwear.", "What insect eats holes in jumpers kept in the wardrobe?"),
    ("Sunflowers turn their heads to follow the sun while they are young. Mature flower heads face east "
     "all day.", "Do those tall yellow blooms track daylight across the sky?"),
    ("Bananas ripen faster when kept in a paper bag with an apple. The fruit gives off ethylene gas, which "
     "triggers softening and sweetness.", "How can I speed up fruit getting soft and sweet?"),
]
SYLLABLES = ["ka", "lo", "mir", "ven", "tas", "dor", "el", "qui", "ran", "sel", "bo", "thar", "ny", "gal", "or", "pe"]
MONTHS = ["January", "March", "May", "July", "September", "November"]


@dataclass
class Question:
    category: str
    query: str
    needle: str  # a passage is relevant when its text contains this


def name(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(3)).capitalize()


def filler(rng: random.Random, domain: str, sentences: int) -> str:
    people, verbs, nouns, adjectives = DOMAINS[domain]
    out = []
    for _ in range(sentences):
        out.append(
            f"The {rng.choice(adjectives)} {rng.choice(people)} {rng.choice(verbs)} the {rng.choice(nouns)} "
            f"{rng.choice(PREPOSITIONS)} the {rng.choice(adjectives)} {rng.choice(nouns)} {rng.choice(TIMES)}."
        )
    return " ".join(out)


def part_number(rng: random.Random) -> str:
    return f"{rng.choice('BCDFGHJKLMNPQRSTVWXZ')}{rng.choice('BCDFGHJKLMNPQRSTVWXZ')}-{rng.randint(1000, 9999)}-{rng.choice('ABCDEFGH')}"


def build_corpus(folder: Path, files: int, seed: int = 7) -> list[Question]:
    """Write ``files`` mixed documents of about ten chunks each with planted facts; return the questions."""
    rng = random.Random(seed)
    questions: list[Question] = []
    paraphrases = list(PARAPHRASES)
    kinds = ["pdf", "docx", "pptx", "html", "md", "txt", "rst", "csv"]
    weights = [20, 15, 10, 15, 12, 14, 7, 7]
    for index in range(files):
        kind = rng.choices(kinds, weights)[0] if index >= len(kinds) else kinds[index]
        domain = rng.choice(list(DOMAINS))
        paragraphs = [filler(rng, domain, rng.randint(9, 12)) for _ in range(10)]
        facts = []
        code = part_number(rng)
        machine = f"{name(rng)} {rng.choice(DOMAINS['workshop'][2])}"
        facts.append(f"Replacement gasket {code} fits the {machine} and is stocked in bin {rng.randint(1, 400)}.")
        questions.append(Question("part_number", code, code))
        place, month, count = name(rng), rng.choice(MONTHS), rng.randint(12, 480)
        facts.append(f"The {place} observatory recorded {count} meteors during the {month} shower.")
        questions.append(Question("named_fact", f"How many meteors did the {place} observatory record in {month}?",
                                  f"{place} observatory recorded {count}"))
        if paraphrases and index % 12 == 5:
            passage, question = paraphrases.pop()
            paragraphs.insert(rng.randrange(len(paragraphs)), passage)
            questions.append(Question("paraphrase", question, passage[:40]))
        for fact in facts:
            at = rng.randrange(len(paragraphs))
            sentences = paragraphs[at].split(". ")
            sentences.insert(rng.randrange(len(sentences)), fact.rstrip("."))
            paragraphs[at] = ". ".join(sentences)
        write(folder / f"{domain}-{index:03}.{kind}", kind, f"{domain.title()} notes {index}", paragraphs)
    (folder / ".hidden-notes.txt").write_text("hidden")
    (folder / "song.mp3").write_bytes(b"ID3")
    return questions


def write(path: Path, kind: str, title: str, paragraphs: list[str]) -> None:
    if kind == "pdf":
        make_pdf(path, [" ".join(paragraphs[i : i + 2]) for i in range(0, len(paragraphs), 2)])
    elif kind == "docx":
        make_docx(path, [title, *paragraphs])
    elif kind == "pptx":
        make_pptx(path, [f"{title}. {p}" for p in paragraphs])
    elif kind == "html":
        make_html(path, title, "</p><p>".join(paragraphs))
    elif kind == "md":
        path.write_text(f"# {title}\n\n" + "\n\n".join(paragraphs), encoding="utf-8")
    elif kind == "rst":
        path.write_text(f"{title}\n{'=' * len(title)}\n\n" + "\n\n".join(paragraphs), encoding="utf-8")
    elif kind == "txt":
        encoding = "cp1252" if path.stem.endswith("7") else "utf-8"
        path.write_text(f"{title}\n\n" + "\n\n".join(paragraphs), encoding=encoding)
    elif kind == "csv":
        rows = ["id,topic,note"] + [f'{i},{title},"{p}"' for i, p in enumerate(paragraphs)]
        path.write_text("\n".join(rows), encoding="utf-8")


def score(searcher, questions: list[Question], mode: str) -> dict[str, dict[str, float]]:
    by_category: dict[str, list[tuple[bool, float]]] = {}
    for question in questions:
        results = searcher.search(question.query, 10, mode=mode)
        ranks = [rank for rank, c in enumerate(results, start=1) if question.needle in c.text]
        first = ranks[0] if ranks else None
        by_category.setdefault(question.category, []).append((first is not None and first <= 5, 1 / first if first else 0.0))
    by_category["all"] = [item for items in by_category.values() for item in items]
    return {
        category: {"questions": len(items), "recall@5": round(sum(h for h, _ in items) / len(items), 4),
                   "mrr@10": round(sum(r for _, r in items) / len(items), 4)}
        for category, items in by_category.items()
    }


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def stock_cold(corpus: Path) -> dict:
    """Stock LlamaIndex on the corpus: DocMind's readers for the text, then SentenceSplitter(512) and
    HuggingFaceEmbedding (the same MiniLM) in an ``IngestionPipeline`` without cache."""
    from llama_index.core import Document
    from llama_index.core.ingestion import IngestionPipeline
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    from docmind.cache.discovery import discover
    from docmind.cache.embeddings import default_embed_model_path
    from docmind.cache.readers import UnreadableFileError, read_file

    model = HuggingFaceEmbedding(model_name=str(default_embed_model_path()), device="cpu")
    model.get_text_embedding("warm up")
    SentenceSplitter(chunk_size=512).get_nodes_from_documents([Document(text="Warm up the tokenizer. " * 200)])
    load = load_average()
    started = time.perf_counter()
    documents = []
    for path in discover([corpus]).files:
        try:
            sections = read_file(path.read_bytes(), path)
        except UnreadableFileError:
            continue
        documents += [Document(text=section.text, metadata={"file": path.name, "page": section.page})
                      for section in sections]
    pipeline = IngestionPipeline(transformations=[SentenceSplitter(chunk_size=512), model], disable_cache=True)
    nodes = pipeline.run(documents=documents)
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 2), "chunks": len(nodes), "load_average_1m": load}


def docmind_cold(corpus: Path, data: Path, backend: str):
    """DocMind's cold ingest of the corpus with ``backend``, the encoder loaded (and exported) beforehand."""
    from docmind.cache import Ingestor
    from docmind.cache.embeddings import default_embed_model_path, load_embed_model
    from docmind.config import load_settings

    load_embed_model(default_embed_model_path(), backend).get_text_embedding("warm up")
    settings = load_settings(data_dir=data, embed_backend=backend)
    ingestor = Ingestor(settings)
    load = load_average()
    report = ingestor.ingest([corpus])
    return settings, ingestor, report, load


def ocr_speed(folder: Path, pages: int = 6) -> dict:
    """OCR pages per second on a scanned PDF (render + detect + recognise), and whether each page reads right."""
    from docmind.cache.readers import open_file
    from tests.cache.files import make_scanned_pdf

    folder.mkdir(parents=True, exist_ok=True)
    sentences = [f"Scanned page {n}: the {DOMAINS['sailing'][2][n % 6]} was inspected by the skipper." for n in range(pages)]
    pdf = make_scanned_pdf(folder / "scan.pdf", sentences)
    started = time.perf_counter()
    texts = [section.text for section in open_file(pdf.read_bytes(), pdf).sections]
    seconds = time.perf_counter() - started
    right = sum(" ".join(text.split()).lower() == sentence.lower() for text, sentence in zip(texts, sentences))
    words = [(word, text.lower()) for text, sentence in zip(texts, sentences) for word in sentence.lower().split()]
    return {"pages": pages, "seconds": round(seconds, 2), "pages_per_second": round(pages / seconds, 3),
            "pages_read_exactly": right, "words_found": round(sum(word in text for word, text in words) / len(words), 3),
            "texts": texts}


# Runs ``docmind`` and writes its own /proc/self/status at exit: VmHWM is the peak RSS of this program alone
# (a child's ru_maxrss would also count the benchmark's memory, inherited between fork and exec).
_WITH_PEAK_RSS = ("import atexit, runpy, sys; out = sys.argv.pop(1); "
                  "atexit.register(lambda: open(out, 'w').write(open('/proc/self/status').read())); "
                  "sys.argv[0] = 'docmind'; runpy.run_module('docmind', run_name='__main__', alter_sys=True)")


def measured_ingest(pdf: Path, data: Path) -> tuple[dict, int]:
    """A real ``docmind ingest PDF --json`` process: its report and its peak RSS in bytes."""
    status = data.with_suffix(".status")
    command = [sys.executable, "-c", _WITH_PEAK_RSS, str(status), "ingest", str(pdf), "--json"]
    child = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "DOCMIND_DATA_DIR": str(data)})
    if child.returncode != 0:
        raise SystemExit(f"ingest of {pdf} failed: {child.stderr[-2000:]}")
    peak_kb = next(int(line.split()[1]) for line in status.read_text().splitlines() if line.startswith("VmHWM:"))
    return json.loads(child.stdout), peak_kb * 1024


def big_pdf(folder: Path, pages: int) -> dict:
    """A generated ``pages``-page text PDF ingested by a real process: time, chunks and peak RSS growth over
    the same process ingesting a one-page PDF (models loaded, nothing big held)."""
    from tests.cache.files import make_pdf

    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(11)
    domains = list(DOMAINS)
    texts = [f"Chapter {n // 20 + 1}, page {n + 1}. " + filler(rng, domains[n % len(domains)], 10) for n in range(pages)]
    started = time.perf_counter()
    make_pdf(folder / "big.pdf", texts)
    make_pdf(folder / "one.pdf", texts[:1])
    generate = time.perf_counter() - started
    _, idle_rss = measured_ingest(folder / "one.pdf", folder / "data-one")
    load = load_average()
    report, peak_rss = measured_ingest(folder / "big.pdf", folder / "data-big")
    growth = peak_rss - idle_rss
    return {"pages": pages, "megabytes": round((folder / "big.pdf").stat().st_size / 1e6, 1),
            "generate_seconds": round(generate, 1), "seconds": report["seconds"], "chunks": report["chunks_added"],
            "pages_per_second": round(pages / report["seconds"], 2), "load_average_1m": load,
            "idle_peak_rss_mb": round(idle_rss / 1e6), "peak_rss_mb": round(peak_rss / 1e6),
            "peak_rss_growth_mb": round(growth / 1e6), "growth_under_500mb": growth < 500e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=330)
    parser.add_argument("--big-pages", type=int, default=1000, help="pages of the generated large PDF (0: skip)")
    parser.add_argument("--keep", type=Path, help="build the corpus and database here instead of a temp dir")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="docmind-bench-"))
    corpus, data = root / "corpus", root / "data"
    corpus.mkdir(parents=True, exist_ok=True)
    os.environ["DOCMIND_DATA_DIR"] = str(data)

    started = time.perf_counter()
    questions = build_corpus(corpus, args.files)
    generate_seconds = time.perf_counter() - started

    from docmind.cache import Ingestor, Searcher
    from docmind.config import load_settings

    (root / "warm").mkdir(exist_ok=True)  # import every reader and the splitter before anything is timed
    build_corpus(root / "warm", 8, seed=3)
    Ingestor(load_settings(data_dir=root / "data-warm")).ingest([root / "warm"])
    stock = stock_cold(corpus)
    settings, ingestor, cold, cold_load = docmind_cold(corpus, data, "onnx-int8")
    torch_settings, _, torch_cold, torch_load = docmind_cold(corpus, root / "data-torch", "torch")
    unchanged = Ingestor(settings).ingest([corpus])
    cli_started = time.perf_counter()
    cli = subprocess.run([sys.executable, "-m", "docmind", "ingest", str(corpus), "--json"],
                         capture_output=True, text=True, env=os.environ.copy())
    cli_unchanged_seconds = time.perf_counter() - cli_started

    edited = sorted(corpus.glob("*.md"))[0]
    text = edited.read_text(encoding="utf-8")
    paragraphs = text.split("\n\n")
    paragraphs[3] = "This paragraph was rewritten for the benchmark: the storeroom moved to the east wing. " * 3
    edited.write_text("\n\n".join(paragraphs), encoding="utf-8")
    edit = ingestor.ingest([corpus])
    Ingestor(torch_settings).ingest([corpus])  # the same edit (it drops a planted fact), so both backends are scored alike

    searcher = Searcher(settings)
    searcher.search("warm up", 1)  # load the model before timing queries
    query_started = time.perf_counter()
    hybrid = score(searcher, questions, "hybrid")
    hybrid_query_ms = (time.perf_counter() - query_started) / len(questions) * 1000
    vector = score(searcher, questions, "vector")
    keyword = score(searcher, questions, "keyword")
    torch_searcher = Searcher(torch_settings)
    torch_hybrid, torch_vector = score(torch_searcher, questions, "hybrid"), score(torch_searcher, questions, "vector")
    ocr = ocr_speed(root / "ocr")
    big = big_pdf(root / "big", args.big_pages) if args.big_pages else None

    chunks = cold.chunks_added
    result = {
        "benchmark": "ingest",
        "machine": {"cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2)},
        "corpus": {
            "files": args.files, "chunks": chunks, "generate_seconds": round(generate_seconds, 1),
            "by_type": {kind: len(list(corpus.glob(f"*.{kind}"))) for kind in
                        ("pdf", "docx", "pptx", "html", "md", "txt", "rst", "csv")},
            "failed": len(cold.files_failed), "skipped": cold.files_skipped,
        },
        "cold": {"seconds": round(cold.seconds, 2), "chunks_per_second": round(chunks / cold.seconds, 1),
                 "embeddings_computed": cold.embeddings_computed,
                 "embedding_seconds": round(cold.embedding_seconds, 2),
                 "embedding_share": round(cold.embedding_seconds / cold.seconds, 3), "load_average_1m": cold_load},
        "cold_torch_backend": {"seconds": round(torch_cold.seconds, 2), "chunks": torch_cold.chunks_added,
                               "embedding_seconds": round(torch_cold.embedding_seconds, 2),
                               "ms_per_chunk": round(torch_cold.embedding_seconds / torch_cold.embeddings_computed * 1000, 1),
                               "load_average_1m": torch_load},
        "stock_llamaindex_cold": stock,
        "speed": {"docmind_over_stock": round(cold.seconds / stock["seconds"], 3),
                  "torch_backend_over_stock": round(torch_cold.seconds / stock["seconds"], 3),
                  "onnx_over_torch_embedding_ms_per_chunk": round(
                      (cold.embedding_seconds / cold.embeddings_computed)
                      / (torch_cold.embedding_seconds / torch_cold.embeddings_computed), 3),
                  "docmind_chunks_over_stock_chunks": round(chunks / stock["chunks"], 3)},
        "ocr": ocr,
        "big_pdf": big,
        "unchanged": {"seconds": round(unchanged.seconds, 3), "share_of_cold": round(unchanged.seconds / cold.seconds, 5),
                      "files_unchanged": unchanged.files_unchanged, "embeddings_computed": unchanged.embeddings_computed,
                      "cli_process_seconds": round(cli_unchanged_seconds, 2),
                      "cli_ok": cli.returncode == 0 and json.loads(cli.stdout)["embeddings_computed"] == 0},
        "one_file_edit": {"seconds": round(edit.seconds, 3), "share_of_cold": round(edit.seconds / cold.seconds, 5),
                          "files_changed": edit.files_changed, "chunks_added": edit.chunks_added,
                          "chunks_removed": edit.chunks_removed, "embeddings_computed": edit.embeddings_computed},
        "retrieval_torch_backend": {"hybrid": torch_hybrid, "vector_only": torch_vector},
        "retrieval": {"hybrid": hybrid, "vector_only": vector, "keyword_only": keyword,
                      "hybrid_ms_per_query": round(hybrid_query_ms, 1),
                      "hybrid_not_worse_in_any_category": all(
                          hybrid[c]["recall@5"] >= vector[c]["recall@5"] and hybrid[c]["mrr@10"] >= vector[c]["mrr@10"]
                          for c in hybrid)},
        "goals": {"cold_le_half_of_stock": cold.seconds <= 0.5 * stock["seconds"],
                  "quality_within_001_of_torch": all(
                      hybrid[c][m] >= torch_hybrid[c][m] - 0.01 for c in hybrid for m in ("recall@5", "mrr@10")),
                  "big_pdf_growth_under_500mb": None if big is None else big["growth_under_500mb"],
                  "unchanged_le_1pct": unchanged.seconds <= 0.01 * cold.seconds,
                  "edit_le_5pct": edit.seconds <= 0.05 * cold.seconds,
                  "edit_embeds_only_changed_chunks": edit.embeddings_computed <= edit.chunks_added,
                  "corpus_ge_300_files_3000_chunks": args.files >= 300 and chunks >= 3000},
    }
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
