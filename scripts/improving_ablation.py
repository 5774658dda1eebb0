"""The §9.2 ablation over seeds, a larger tuner search, and the learning curve.

What ``book/faq/improving.ipynb`` cannot fit in its budget: the chapter runs
:func:`dlnotes.pipelines.improving.run_ablation` once (seed 0, :data:`~dlnotes.pipelines.improving.LIVE`);
this script runs the same call for every seed (with ``final=True``: the tuned recipe retrained
on all 4,000 images, alone and as an ensemble), one longer Optuna search, and
:func:`~dlnotes.pipelines.improving.learning_curve` for the baseline and the tuned recipe. It writes

* ``benchmarks/improving.json`` -- every number (the chapter reads it and checks that its live
  row falls inside the stored range);
* ``benchmarks/improving.md`` -- the table, with the machine and its load;
* ``book/faq/improving_learning_curve.png`` -- the learning curve on a log axis.

Data: the course's offline MNIST split (4,000 training images, 1,000 test images), the same
500-image validation split (``split_validation(seed=0)``) for every seed; the seed changes the
weights, the batches, the augmentations and the tuner's draws. Timings mean something only on
an otherwise idle machine.

Usage (from the repository root, inside the virtual environment)::

    python scripts/improving_ablation.py                         # 5 seeds, 20-trial search, 3 curve seeds
    python scripts/improving_ablation.py --seeds 0 --curve-seeds 0 --search-trials 2 --sizes 250 500 --out /tmp/x
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]

import torch  # noqa: E402

from common import cpu_model, load_report, versions  # noqa: E402

STEP_NAMES = {"baseline": "baseline (the outline's CNN)", "augmentation": "+ augmentation",
              "regularisation": "+ regularisation", "tuning": "+ tuning", "ensemble": "+ ensemble",
              "tta": "tuned model + test-time augmentation",
              "final": "final: the tuned recipe on all 4,000 images",
              "final_ensemble": "final ensemble on all 4,000 images"}


def load_split():
    from dlnotes.pipelines import image_classifier, improving

    (x, y), (x_test, y_test) = image_classifier.load_data()
    x, y = image_classifier.torch_images(x), torch.from_numpy(y).long()
    x_test, y_test = image_classifier.torch_images(x_test), torch.from_numpy(y_test).long()
    fit, val = improving.split_validation(x, y, seed=0)
    return (x, y), fit, val, (x_test, y_test)


def summary(values):
    if any(v is None for v in values):   # validation accuracy of a model that trained on the validation images
        return None
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "values": values}


def run(args) -> dict:
    from dlnotes.pipelines import improving

    (x_all, y_all), fit, val, test = load_split()
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": cpu_model(),
              "threads": torch.get_num_threads(), "load_at_start": load_report(), "versions": versions(),
              "seeds": args.seeds, "live": improving.LIVE,
              "steps": {name: dataclasses.asdict(recipe) for name, recipe in improving.STEPS.items()},
              "search_space": {k: list(v) for k, v in improving.SEARCH_SPACE.items()}, "per_seed": {}, "tuned": {}}
    start = time.perf_counter()
    for seed in args.seeds:
        print(f"== ablation, seed {seed}", flush=True)
        result = improving.run_ablation(fit, val, test, seed=seed, final=True, on_step=lambda name, row: print(name, row, flush=True))
        report["per_seed"][seed] = result.rows
        report["tuned"][seed] = dataclasses.asdict(result.recipe)
        if seed == args.seeds[0]:
            chapter_recipe = result.recipe
    report["rows"] = {name: {metric: summary([report["per_seed"][s][name][metric] for s in args.seeds])
                             for metric in ("val_accuracy", "test_accuracy", "seconds")} for name in STEP_NAMES}

    print(f"== search with {args.search_trials} trials", flush=True)
    t0 = time.perf_counter()
    recipe, study = improving.tune(*fit, *val, trials=args.search_trials, seed=0)
    model, history = improving.train(recipe, *fit, *val, seed=0)
    report["search"] = {"trials": args.search_trials, "best_trial_val_accuracy": study.best_value,
                        "recipe": dataclasses.asdict(recipe),
                        "val_accuracy": improving.accuracy(improving.predict_proba(model, val[0]), val[1]),
                        "test_accuracy": improving.accuracy(improving.predict_proba(model, test[0]), test[1]),
                        "seconds": time.perf_counter() - t0}

    print("== learning curve", flush=True)
    recipes = {"baseline": improving.STEPS["baseline"], "tuned": chapter_recipe}
    curves = [improving.learning_curve(recipes, x_all, y_all, *test, sizes=args.sizes, seed=seed)
              for seed in args.curve_seeds]
    report["curve"] = {"sizes": args.sizes, "seeds": args.curve_seeds, "tuned_recipe_of_seed": args.seeds[0],
                       **{name: [summary([c[name][i] for c in curves]) for i in range(len(args.sizes))]
                          for name in recipes}}
    report["seconds"] = time.perf_counter() - start
    return report


def markdown(report: dict) -> str:
    rows = report["rows"]
    n = len(report["seeds"])
    lines = [f"# Improving a model: the ablation over {n} seeds", "",
             "Generated by `scripts/improving_ablation.py` (every number: `benchmarks/improving.json`).",
             f"{report['date']}, {report['machine']}, {report['threads']} torch threads. {report['load_at_start']}",
             f"Whole run: {report['seconds']:.0f} s.", "",
             "Training: 3,500 of the 4,000 offline MNIST training images; validation: the other 500 "
             "(every decision); test: the 1,000 test images (reported only). "
             f"Tuning: {report['live']['trials']} Optuna TPE trials; ensemble: {report['live']['members']} seeds "
             f"of the tuned recipe; test-time augmentation: {report['live']['tta']} draws. The two final rows "
             "train the tuned recipe (every epoch, no early stopping) on all 4,000 images once the "
             "validation split has made its decisions, so they have no validation accuracy.", "",
             f"| step | validation accuracy | test accuracy (mean ± std over {n} seeds) | test min–max | training s |",
             "|---|---:|---:|---:|---:|"]
    for name, label in STEP_NAMES.items():
        v, t, s = rows[name]["val_accuracy"], rows[name]["test_accuracy"], rows[name]["seconds"]
        v = "–" if v is None else f"{v['mean']:.4f} ± {v['std']:.4f}"
        lines.append(f"| {label} | {v} | {t['mean']:.4f} ± {t['std']:.4f} | "
                     f"{t['min']:.3f}–{t['max']:.3f} | {s['mean']:.0f} |")
    search = report["search"]
    lines += ["", f"Tuned settings per seed: " + "; ".join(
        f"seed {seed}: {r['conv_blocks']} conv blocks, width {r['width']}, dropout {r['dropout']:.2f}, "
        f"lr {r['learning_rate']:.2g}, weight decay {r['weight_decay']:.2g}" for seed, r in report["tuned"].items()),
        "", f"A longer search ({search['trials']} trials, seed 0): best trial validation accuracy "
        f"{search['best_trial_val_accuracy']:.4f}; its recipe trained in full: validation {search['val_accuracy']:.4f}, "
        f"test {search['test_accuracy']:.4f} ({search['seconds']:.0f} s with the search).", "",
        f"## Learning curve (test accuracy, mean ± std over seeds {report['curve']['seeds']})", "",
        "| training images | baseline | tuned recipe |", "|---:|---:|---:|"]
    curve = report["curve"]
    for i, size in enumerate(curve["sizes"]):
        b, t = curve["baseline"][i], curve["tuned"][i]
        lines.append(f"| {size:,} | {b['mean']:.4f} ± {b['std']:.4f} | {t['mean']:.4f} ± {t['std']:.4f} |")
    return "\n".join(lines) + "\n"


def figure(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator

    curve = report["curve"]
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for name, label, marker in (("baseline", "baseline (the outline's CNN)", "o"),
                                ("tuned", "final recipe (augmentation, regularisation, tuning)", "s")):
        means = [p["mean"] for p in curve[name]]
        stds = [p["std"] for p in curve[name]]
        ax.errorbar(curve["sizes"], means, yerr=stds, marker=marker, capsize=3, label=label)
    ax.set_xscale("log")
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(curve["sizes"], [f"{n:,}" for n in curve["sizes"]])
    ax.set_xlabel("training images (log scale)")
    ax.set_ylabel("test accuracy (1,000 images)")
    ax.set_title(f"Learning curve, mean ± std over {len(curve['seeds'])} seeds")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--search-trials", type=int, default=20)
    parser.add_argument("--curve-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sizes", type=int, nargs="+", default=[250, 500, 1000, 2000, 4000])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "improving",
                        help="writes OUT.json and OUT.md")
    parser.add_argument("--figure", type=Path, default=ROOT / "book" / "faq" / "improving_learning_curve.png")
    args = parser.parse_args(argv)
    os.environ.setdefault("DLNOTES_DATA_MIRROR", str(ROOT.parent / "shared" / "data"))
    report = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    figure(report, args.figure)
    print(markdown(report))


if __name__ == "__main__":
    main()
