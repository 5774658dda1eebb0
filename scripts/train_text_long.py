"""Text generation beyond the chapter's budget: a 10-minute run, and the step-by-step comparison.

Two measurements of *Text generation with PyTorch* (``book/projects/text_generation.ipynb``)
that do not fit in the chapter's 150 s. Both write ``benchmarks/text_generation_long.json`` (each
mode replaces only its own key, so the two can be rerun separately) and render it as
``benchmarks/text_generation_long.md``.

* Default (``--minutes 10``): trains the chapter's best recipe (CharLSTM 256, dropout 0.1, batch
  16 x 64, Adam with a 100-step warm-up and a linear decay over the last 40 % of the steps,
  clipping at norm 1) for a wall-time budget. The number of steps is fixed before training from
  the speed of 100 calibration steps (after 50 not timed), so that the learning-rate schedule can end at the budget;
  every ``--evaluations``-th of the run the model is evaluated on the *whole* validation text
  (64-character windows from a zero state, as the chapter; the clock is paused meanwhile), and
  training stops early if the clock runs past the budget. Writes the key ``"long"`` and the figure
  ``book/projects/text_generation_long.png`` (validation loss against training seconds).
* ``--ablation``: the chapter's question, one change at a time at the chapter's budget
  (1,000 steps of 64 x 64 or 6,000 of 16 x 64 characters): smaller batches and more steps, the
  warm-up/decay schedule, dropout, a state carried across batches (truncated BPTT), and a small
  Transformer. Writes the key ``"ablation"``.

Run it on an otherwise idle machine; the seconds depend on the machine and on ``OMP_NUM_THREADS``.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 python scripts/train_text_long.py                    # 10 minutes, 1 thread
    OMP_NUM_THREADS=1 python scripts/train_text_long.py --ablation --seeds 0
    python scripts/train_text_long.py --minutes 0.3 --out /tmp/long        # a quick try
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from common import ROOT, load_report  # noqa: E402

os.environ.setdefault("DLNOTES_DATA_MIRROR", str(ROOT.parent / "shared" / "data"))   # the mirror beside the checkout

import torch  # noqa: E402

import dlnotes  # noqa: E402
from dlnotes import data  # noqa: E402
from dlnotes.pipelines import text_generation as tg  # noqa: E402

RECIPE = dict(hidden=256, embedding=64, dropout=0.1, batch=16, seq_len=64, lr=3e-3, warmup_steps=100,
              decay_at=0.6, min_lr_fraction=0.0, clip_norm=1.0)
# The comparison: (name, model, training arguments); the chapter's recipe is "+ dropout 0.1".
LINEAR = dict(schedule="linear", warmup_steps=100, decay_at=0.6)
ABLATION = [
    ("today: batch 64, 1,000 steps, step decay", "lstm", dict(batch_size=64, steps=1000, learning_rate=4e-3)),
    ("batch 16, 6,000 steps, step decay", "lstm", dict(batch_size=16, steps=6000, learning_rate=3e-3)),
    ("+ warm-up 100, linear decay (last 40 %)", "lstm", dict(batch_size=16, steps=6000, learning_rate=3e-3, **LINEAR)),
    ("+ dropout 0.1 (the chapter's recipe)", "lstm-dropout", dict(batch_size=16, steps=6000, learning_rate=3e-3, **LINEAR)),
    ("+ carried state (truncated BPTT)", "lstm-dropout",
     dict(batch_size=16, steps=6000, learning_rate=3e-3, carry_state=True, **LINEAR)),
    ("Transformer (2 layers, d = 128, 4 heads)", "transformer",
     dict(batch_size=16, steps=6000, learning_rate=2e-3, **LINEAR)),
]


def load_text(device):
    text = data.load_tiny_shakespeare()
    vocab = tg.Vocabulary.from_text(text)
    ids = vocab.encode(text)
    split = int(0.9 * len(ids))
    return vocab, ids[:split].to(device), ids[split:].to(device)


def build(kind: str, vocab_size: int, seed: int, hidden: int = 256, dropout: float = 0.1):
    dlnotes.seed_everything(seed)
    if kind == "transformer":
        return tg.CharTransformer(vocab_size, context=64, d_model=128, num_heads=4, num_layers=2)
    return tg.build_torch_model(vocab_size, embedding_dim=64, hidden_size=hidden,
                                dropout=dropout if kind == "lstm-dropout" else 0.0)


def run_ablation(seeds: list[int], device, only: list[int], save) -> list[dict]:
    """Train each row of ABLATION (or those numbered in ``only``) per seed; ``save(rows)`` after each run."""
    vocab, train_ids, val_ids = load_text(device)
    rows = []
    for number, (name, kind, kwargs) in enumerate(ABLATION):
        if only and number not in only:
            continue
        for seed in seeds:
            model = build(kind, len(vocab), seed).to(device)
            start = time.perf_counter()
            tg.train_torch(model, train_ids, seq_len=64, seed=seed, eval_every=kwargs["steps"], **kwargs)
            seconds = time.perf_counter() - start
            row = {"name": name, "seed": seed, "seconds": seconds,
                   "val_loss": tg.evaluate_loss(model, val_ids, 64)}
            if kind != "transformer":
                row["stream_val_loss"] = tg.evaluate_stream_loss(model, val_ids, 64)
            rows.append(row)
            save(rows)
            print(json.dumps(row), flush=True)
    return rows


def run_long(minutes: float, seed: int, evaluations: int, device, hidden: int, dropout: float) -> dict:
    vocab, train_ids, val_ids = load_text(device)
    budget = 60.0 * minutes
    r = dict(RECIPE, hidden=hidden, dropout=dropout)
    train_args = dict(batch_size=r["batch"], seq_len=r["seq_len"], learning_rate=r["lr"], seed=seed,
                      clip_norm=r["clip_norm"], schedule="linear", warmup_steps=r["warmup_steps"],
                      decay_at=r["decay_at"], min_lr_fraction=r["min_lr_fraction"])
    calibration, marks = build("lstm-dropout", len(vocab), seed, hidden, dropout).to(device), []
    tg.train_torch(calibration, train_ids, **{**train_args, "steps": 150, "eval_every": 50, "warmup_steps": 10},
                   callback=lambda step, logs: marks.append(time.perf_counter()))
    steps_per_s = 100 / (marks[-1] - marks[0])    # steps 51-150: the first steps are slower
    eval_every = max(1, int(budget * steps_per_s / evaluations))
    steps = eval_every * evaluations
    r["warmup_steps"] = train_args["warmup_steps"] = min(r["warmup_steps"], steps)

    model = build("lstm-dropout", len(vocab), seed, hidden, dropout).to(device)
    points, clock = [], {"train": 0.0, "since": time.perf_counter()}

    def record(step, logs):
        clock["train"] += time.perf_counter() - clock["since"]
        points.append({"step": step, "train_seconds": round(clock["train"], 2), "train_loss": logs["loss"],
                       "val_loss": tg.evaluate_loss(model, val_ids, r["seq_len"])})
        print(json.dumps(points[-1]), flush=True)
        clock["since"] = time.perf_counter()
        return clock["train"] > budget

    tg.train_torch(model, train_ids, steps=steps, eval_every=eval_every, callback=record, **train_args)
    return {"recipe": r, "seed": seed, "minutes": minutes, "planned_steps": steps,
            "calibration_steps_per_s": round(steps_per_s, 2), "points": points,
            "final_val_loss": points[-1]["val_loss"],
            "final_stream_val_loss": tg.evaluate_stream_loss(model, val_ids, r["seq_len"])}


def markdown(found: dict) -> str:
    lines = ["# Text generation beyond the chapter's budget", "",
             "Written by `scripts/train_text_long.py` (do not edit by hand); shown in "
             "`book/projects/text_generation.ipynb`. Validation loss in nats per character on the whole "
             "validation text (111,540 characters), 64-character windows from a zero state unless stated.", ""]
    if "ablation" in found:
        a = found["ablation"]
        lines += ["## One change at a time, at the chapter's budget", "", a["machine"],
                  f"Measured {a['when']}, OMP_NUM_THREADS={a['threads']}, seeds {a['seeds']}. "
                  "*carried* = the same model evaluated with its state carried across windows "
                  "(`evaluate_stream_loss`, 16 streams).", "",
                  "| step | seeds | validation loss (mean) | min | max | carried | training s |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for name, *_ in ABLATION:
            rows = [row for row in a["rows"] if row["name"] == name]
            if not rows:
                continue
            v = [row["val_loss"] for row in rows]
            s = [row["stream_val_loss"] for row in rows if "stream_val_loss" in row]
            carried = f"{sum(s) / len(s):.3f}" if s else "-"
            lines.append(f"| {name} | {len(v)} | {sum(v) / len(v):.3f} | {min(v):.3f} | {max(v):.3f} | {carried} | "
                         f"{sum(row['seconds'] for row in rows) / len(rows):.0f} |")
        lines.append("")
    if "long" in found:
        g = found["long"]
        r = g["recipe"]
        lines += [f"## {g['minutes']:g} minutes of training", "", g["machine"],
                  f"Measured {g['when']}, OMP_NUM_THREADS={g['threads']}, seed {g['seed']}. Recipe: CharLSTM "
                  f"{r['hidden']} (embedding {r['embedding']}, dropout {r['dropout']}), batch {r['batch']} x "
                  f"{r['seq_len']}, Adam {r['lr']:g} with a {r['warmup_steps']}-step warm-up and a linear decay from "
                  f"{r['decay_at']:.0%} of {g['planned_steps']:,} planned steps (from "
                  f"{g['calibration_steps_per_s']} steps/s in calibration), clipping at norm {r['clip_norm']:g}. "
                  "Training seconds exclude the evaluations.", "",
                  "| step | training s | training loss | validation loss |", "|---:|---:|---:|---:|"]
        lines += [f"| {p['step']:,} | {p['train_seconds']:.0f} | {p['train_loss']:.3f} | {p['val_loss']:.3f} |"
                  for p in g["points"]]
        lines += ["", f"Final validation loss {g['final_val_loss']:.3f}; with the state carried across windows "
                  f"{g['final_stream_val_loss']:.3f}.", ""]
    return "\n".join(lines)


def figure(long: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seconds = [p["train_seconds"] for p in long["points"]]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(seconds, [p["train_loss"] for p in long["points"]], "o-", ms=3, label="training (mean since last point)")
    ax.plot(seconds, [p["val_loss"] for p in long["points"]], "o-", ms=3, label="validation (whole split)")
    ax.axhline(1.55, color="0.4", ls="--", lw=1, label="the chapter's threshold, 1.55")
    ax.axhline(1.45, color="0.4", ls=":", lw=1, label="aim of the long run, 1.45")
    ax.set(xlabel="training seconds (evaluations excluded)", ylabel="loss (nats per character)",
           ylim=(1.2, 2.4), title=f"CharLSTM({long['recipe']['hidden']}) for {long['minutes']:g} minutes, "
                                  f"OMP_NUM_THREADS={long['threads']}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training wall-time budget (default 10)")
    parser.add_argument("--evaluations", type=int, default=20, help="evaluations over the run (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden", type=int, default=RECIPE["hidden"])
    parser.add_argument("--dropout", type=float, default=RECIPE["dropout"])
    parser.add_argument("--ablation", action="store_true", help="run the comparison instead")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="seeds of the comparison")
    parser.add_argument("--only", nargs="+", type=int, default=[],
                        help="with --ablation: rerun only these rows (0-based), keeping the others stored")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks",
                        help="folder of text_generation_long.{json,md} (default benchmarks/)")
    parser.add_argument("--figure", type=Path, default=None,
                        help="default: book/projects/text_generation_long.png, or OUT/ with --out")
    args = parser.parse_args(argv)
    threads = int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads()))
    torch.set_num_threads(threads)
    device = dlnotes.get_device()
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / "text_generation_long.json"
    found = json.loads(json_path.read_text(encoding="utf-8")) if json_path.exists() else {}
    stamp = {"machine": load_report(), "threads": threads, "device": str(device),
             "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    def write():
        json_path.write_text(json.dumps(found, indent=1) + "\n", encoding="utf-8")
        (args.out / "text_generation_long.md").write_text(markdown(found), encoding="utf-8")

    if args.ablation:
        kept = [] if not args.only else [r for r in found.get("ablation", {}).get("rows", [])
                                         if r["name"] not in {ABLATION[i][0] for i in args.only}]

        def save(rows):
            found["ablation"] = {**stamp, "seeds": args.seeds, "rows": kept + rows}
            write()

        run_ablation(args.seeds, device, args.only, save)
    else:
        found["long"] = {**stamp, **run_long(args.minutes, args.seed, args.evaluations, device,
                                             args.hidden, args.dropout)}
        default = args.out if args.out != ROOT / "benchmarks" else ROOT / "book" / "projects"
        figure(found["long"], args.figure or default / "text_generation_long.png")
    write()
    print(markdown(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
