"""Choose the fusion settings and the relevance threshold on the development half of the questions.

Run ``tests/benchmarks/bench_retrieval.py --split dev`` first (it builds the libraries), then
``python tests/retrieval_eval/tune.py [--work DIR]``. It never reads the held-out half. It prints JSON:
the five best fusion settings of a small global grid with their dev figures (overall, and the worst corpus
and question type) and the default's, and the relevance threshold chosen by the rule of ``thresholds``
for each pair of unknown-term and unknown-name penalties.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks.bench_retrieval import TOP, Hit, breakdown, load_questions, rank_of  # noqa: E402
from tests.retrieval_eval.fetch_corpora import CORPORA, default_dest  # noqa: E402

GRID = {
    "rrf_k": [10, 30, 60],
    "keyword_weight": [0.25, 0.5, 1.0],
    "coverage_power": [0.0, 0.5, 1.0],
    "per_document": [0, 1, 2],
    "context_weight": [1.0],  # 0, 1, 2 and 4 tied within one question in sessions 4 and 5
    "part_weight": [0.0, 0.5, 1.0],
    "file_evidence": [0.0, 0.2, 0.5],
}
TERM_PENALTIES = [0.0, 0.2, 0.3, 0.4]  # relevance lost per share of the question's terms the library lacks
NAME_PENALTIES = [0.0, 0.1, 0.2, 0.3]  # relevance lost when one of those is a name (outside the encoder's vocabulary)
ANSWERED_GOAL = 0.95
MARGIN = 0.01  # the threshold must keep this much more of the answerable questions answered than the goal


def objective(figures: dict) -> float:
    """One number per setting: overall recall@5 and MRR@10, and the worst corpus and type, equally."""
    overall = figures["overall"]
    worst = min(figures[name]["mrr@10"] + figures[name]["recall@5"] for name in figures if name != "overall")
    return round(overall["recall@5"] + overall["mrr@10"] + worst / 2, 4)


def main() -> None:
    from docmind.agent.tools import SEARCH_K
    from docmind.cache.retrieval import Fusion, Searcher
    from docmind.config import load_settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=default_dest() / "work")
    args = parser.parse_args()
    questions = load_questions("dev")
    searchers = {corpus: Searcher(load_settings(data_dir=args.work / "docmind" / corpus)) for corpus in CORPORA}
    found = {  # the keyword ranking depends on the context weight only; the rest is fusion
        (weight, q.id): searchers[q.corpus].candidates(q.question, 4 * TOP, fusion=Fusion(context_weight=weight))
        for weight in GRID["context_weight"] for q in questions
    }
    results = []
    for values in itertools.product(*GRID.values()):
        fusion = Fusion(**dict(zip(GRID, values)))
        ranks = {}
        for q in questions:
            hits = searchers[q.corpus].fuse(found[fusion.context_weight, q.id], TOP, fusion)
            ranks[q.id] = rank_of(q, [Hit(Path(c.source).name, c.page) for c in hits])
        figures = breakdown(questions, ranks)
        results.append({"fusion": asdict(fusion), "objective": objective(figures), **figures})
    results.sort(key=lambda row: row["objective"], reverse=True)
    default = next(row for row in results if row["fusion"] == asdict(Fusion()))
    print(json.dumps({"split": "dev", "default": default, "best": results[:5],
                      "thresholds": thresholds(questions, searchers, SEARCH_K)}, indent=1))


def thresholds(questions: list, searchers: dict, k: int) -> dict:
    """The relevance threshold, chosen by one rule: for each pair of penalties, the thresholds (0.10 to
    0.60 by 0.01) that keep at least ``ANSWERED_GOAL + MARGIN`` of the answerable questions answered; the
    pair that flags the most no-answer questions there (ties: the smaller penalties); its threshold in the
    middle of those flagging that many. Every pair's best row is listed too."""
    from docmind.agent.citations import TurnPassages
    from docmind.agent.tools import DocumentSearch

    no_answer = [q for q in questions if q.type == "no_answer"]
    answerable = [q for q in questions if q.type != "no_answer"]
    rows = []
    for term_penalty, name_penalty in itertools.product(TERM_PENALTIES, NAME_PENALTIES):
        best = {}
        for q in questions:
            search = DocumentSearch(searchers[q.corpus], TurnPassages(), q.question, k=k, min_relevance=float("-inf"),
                                    unknown_term_penalty=term_penalty, unknown_name_penalty=name_penalty)
            best[q.id] = max((p.score for p in search.search(q.question)), default=float("-inf"))
        feasible = []
        for step in range(10, 61):
            threshold = step / 100
            flagged = {q.id for q in questions if best[q.id] < threshold}
            answered = sum(q.id not in flagged for q in answerable) / len(answerable)
            if answered >= ANSWERED_GOAL + MARGIN:
                feasible.append((round(sum(q.id in flagged for q in no_answer) / len(no_answer), 3),
                                 threshold, round(answered, 3)))
        top = max(share for share, _, _ in feasible)
        at_top = [(threshold, answered) for share, threshold, answered in feasible if share == top]
        threshold, answered = at_top[len(at_top) // 2]
        rows.append({"unknown_term_penalty": term_penalty, "unknown_name_penalty": name_penalty,
                     "no_answer_recall": top, "thresholds": [at_top[0][0], at_top[-1][0]],
                     "threshold": threshold, "answerable_answered": answered})
    chosen = max(rows, key=lambda row: (row["no_answer_recall"], -row["unknown_term_penalty"] - row["unknown_name_penalty"]))
    return {"rule": f"answered >= {ANSWERED_GOAL + MARGIN:.2f}", "chosen": chosen, "pairs": rows}


if __name__ == "__main__":
    main()
