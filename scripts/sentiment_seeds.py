"""Five seeds of every model of *Sentiment analysis* (book/applications/sentiment.ipynb), in-source and cross-source.

For each seed: ``sentiment.fit_models`` on the chapter's fixed split (split seed 0, 20 percent test,
stratified by source and label) for every model of ``sentiment.MODELS`` (the bag-of-words baseline,
VADER alone, the baseline with VADER's score, the mean-pooled embeddings without and with it, the
1-D CNN); then, for each source, the same trained on the training rows of the other two sources and
tested on the test rows of that source. The seed changes the initial weights, the
batches and the baseline's CV folds, never the split. Writes ``benchmarks/sentiment.json`` (every
run, and mean/std/min/max per cell) and ``benchmarks/sentiment.md``.

Usage::

    OMP_NUM_THREADS=1 python scripts/sentiment_seeds.py --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one_seed(seed: int) -> dict:
    from dlnotes.pipelines import sentiment

    MODELS = sentiment.MODELS

    data = sentiment.load_sentences()
    train, test = sentiment.stratified_split(data.labels, data.sources, test_fraction=0.2, seed=0)
    runs = {}
    start = time.perf_counter()
    result = sentiment.fit_models(data, train, test, seed=seed, models=MODELS)
    for model in MODELS:
        runs[f"{model}/in-source"] = result[model]["accuracy"]
        runs[f"{model}/in-source"]["auc"] = sentiment.roc_auc(result["labels"], result[model]["proba"])
    for held_out, (rows, test_rows) in sentiment.cross_source_splits(data.sources, train, test).items():
        result = sentiment.fit_models(data, rows, test_rows, seed=seed, models=MODELS)
        for model in MODELS:
            runs[f"{model}/cross/{held_out}"] = {"all": result[model]["accuracy"]["all"]}
    for model in MODELS:
        runs[f"{model}/cross/mean-of-3"] = {"all": statistics.fmean(runs[f"{model}/cross/{s}"]["all"]
                                                                    for s in sentiment.SOURCES)}
    runs["seconds"] = time.perf_counter() - start
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "sentiment")
    args = parser.parse_args()
    os.environ.setdefault("DLNOTES_DATA_MIRROR", str(ROOT.parent / "shared" / "data"))
    import torch
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

    load_at_start = os.getloadavg()[0]
    per_seed = {}
    for seed in args.seeds:
        per_seed[seed] = one_seed(seed)
        print(f"seed {seed} done in {per_seed[seed]['seconds']:.1f} s", flush=True)
    summary = {}
    for key in per_seed[args.seeds[0]]:
        if key == "seconds":
            continue
        for metric in per_seed[args.seeds[0]][key]:
            values = [per_seed[s][key][metric] for s in args.seeds]
            summary[f"{key}/{metric}"] = {"mean": statistics.fmean(values),
                                          "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                                          "min": min(values), "max": max(values)}
    report = {"seeds": args.seeds, "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
              "torch": torch.__version__, "load_at_start": load_at_start, "summary": summary,
              "runs": {str(s): r for s, r in per_seed.items()}}
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    lines = [f"# Sentiment analysis: {len(args.seeds)} seeds (scripts/sentiment_seeds.py)", "",
             f"Seeds {args.seeds}, {report['threads']} thread(s), torch {torch.__version__}. Test accuracy on the fixed",
             "split (600 test sentences, 200 per source); cross-source: trained on the training rows of the",
             "other two sources, tested on the 200 test rows of the named one. Mean ± std (min-max).", "",
             "| model | evaluation | metric | mean ± std | min | max |", "|---|---|---|---:|---:|---:|"]
    for key, row in summary.items():
        model, *where, metric = key.split("/")
        lines.append(f"| {model} | {'/'.join(where)} | {metric} | {row['mean']:.4f} ± {row['std']:.4f} "
                     f"| {row['min']:.4f} | {row['max']:.4f} |")
    seconds = [per_seed[s]["seconds"] for s in args.seeds]
    lines += ["", f"Seconds per seed (all 24 fits): {statistics.fmean(seconds):.1f} (mean); load average at start "
              f"{load_at_start:.2f} on {os.cpu_count()} CPU(s) (timings mean little on a busy machine; accuracies do not depend on it)."]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
