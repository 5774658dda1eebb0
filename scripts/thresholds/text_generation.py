"""Thresholds of *Text generation with PyTorch* (book/projects/text_generation.ipynb).

``measure(seed)`` runs the chapter's own calls with ``SEED = seed``: build the CharLSTM (with
dropout 0.1), train it for 5,500 steps of 16 x 64 characters with ``train_torch`` and the linear
warm-up/decay schedule, evaluate it on the whole validation text with 64- and 256-character windows
(exercise 3), and sample at temperatures 0.2 and 3.0 (exercise 2). Every argument below is the
notebook's; keep the two in step.
"""

from __future__ import annotations

import os

# The notebook's constants.
HIDDEN, EMBED, DROPOUT, SEQ_LEN, BATCH = 256, 64, 0.1, 64, 16
STEPS, EVAL_EVERY, LR = 5500, 500, 3e-3
SCHEDULE = dict(schedule="linear", warmup_steps=100, decay_at=0.6, min_lr_fraction=0.0)
PROBE = 32_769          # validation characters evaluated during training
LONG_SEQ_LEN = 256      # exercise 3
COLD, HOT, SAMPLE_LENGTH, SAMPLE_SEED = 0.2, 3.0, 300, 0   # exercise 2

# Measured over seeds 0-4 x 1 thread (benchmarks/thresholds_text_generation_rows.md): worst val_loss 1.549,
# perplexity 4.707, context_gain 0.0306, known_words_cold 0.984, known_words_hot 0.327. Each threshold
# leaves a margin beyond the worst run; for val_loss it is thin (0.001): 1.55 is the goal of issue 11.
THRESHOLDS = {
    "val_loss": (1.55, "max"),            # nats per character on the whole validation text
    "perplexity": (4.75, "max"),
    "context_gain": (0.01, "min"),        # loss with 64-character windows minus loss with 256
    "known_words_cold": (0.85, "min"),    # share of real words in a sample at temperature 0.2
    "known_words_hot": (0.5, "max"),      # ... and at temperature 3.0
}


def measure(seed: int) -> dict[str, float]:
    os.environ.setdefault("DLNOTES_DATA_MIRROR", "/work/shared/data")
    import dlnotes
    from dlnotes import data
    from dlnotes.pipelines import text_generation

    device = dlnotes.get_device()
    text = data.load_tiny_shakespeare()
    vocab = text_generation.Vocabulary.from_text(text)
    ids = vocab.encode(text)
    split = int(0.9 * len(ids))
    train_ids, val_ids = ids[:split].to(device), ids[split:].to(device)

    dlnotes.seed_everything(seed)
    model = text_generation.build_torch_model(len(vocab), embedding_dim=EMBED, hidden_size=HIDDEN,
                                              dropout=DROPOUT).to(device)
    text_generation.train_torch(model, train_ids, steps=STEPS, batch_size=BATCH, seq_len=SEQ_LEN,
                                learning_rate=LR, seed=seed, validation_data=val_ids[:PROBE],
                                eval_every=EVAL_EVERY, **SCHEDULE)
    metrics = text_generation.evaluate_torch(model, val_ids, seq_len=SEQ_LEN)
    long_loss = text_generation.evaluate_loss(model, val_ids, LONG_SEQ_LEN)
    train_text = text[:split]
    known = {}
    for name, tau in (("cold", COLD), ("hot", HOT)):
        generated = text_generation.sample(model, vocab, "ROMEO:\n", SAMPLE_LENGTH, temperature=tau,
                                           seed=SAMPLE_SEED)
        known[f"known_words_{name}"] = text_generation.known_word_fraction(generated[len("ROMEO:\n"):], train_text)
    return {"val_loss": metrics["loss"], "perplexity": metrics["perplexity"],
            "context_gain": metrics["loss"] - long_loss, **known}


if __name__ == "__main__":
    print(measure(0))
