"""Spoken digits: FSDD loading, log-mel features, a small CNN, and a CRNN trained with CTC.

Used by book/applications/speech.ipynb. The features come from :mod:`dlnotes.scratch.speech`
(checked against librosa in tests/scratch/test_speech.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from dlnotes._checks import check_positive_int, check_positive_float, check_real
from dlnotes.data import fetch
from dlnotes.scratch import speech as feats

SPEAKERS = ("jackson", "nicolas", "theo")
SAMPLE_RATE, N_FFT, HOP, N_MELS, N_MFCC = 8000, 256, 80, 40, 13
FIXED_SAMPLES = 7040  # 0.88 s: all but 4 of theo's recordings fit; 1 + 7040 // 80 = 89 frames
BLANK = 10


@dataclass
class Recordings:
    """Waveforms (list of float64 (T_i,), peak-normalised to 1), ``labels`` (N,), ``speakers`` (N,) str, ``index`` (N,)."""
    waves: list
    labels: np.ndarray
    speakers: np.ndarray
    index: np.ndarray


def load_fsdd(speakers=SPEAKERS) -> Recordings:
    """Read the mirrored FSDD packs; every recording is scaled to peak 1 (theo's are quiet)."""
    speakers = tuple(speakers)
    if not speakers or any(s not in SPEAKERS for s in speakers):
        raise ValueError(f"`speakers` must be a non-empty subset of {SPEAKERS}. Received: speakers={speakers!r}")
    waves, labels, spk, index = [], [], [], []
    for name in speakers:
        with np.load(fetch(f"fsdd-{name}"), allow_pickle=False) as pack:
            audio, offsets = pack["audio"], pack["offsets"]
            for i in range(len(offsets) - 1):
                w = audio[offsets[i]:offsets[i + 1]].astype(np.float64)
                waves.append(w / max(np.abs(w).max(), 1.0))
            labels.append(pack["labels"].astype(np.int64))
            index.append(pack["index"].astype(np.int64))
            spk += [name] * (len(offsets) - 1)
    return Recordings(waves, np.concatenate(labels), np.array(spk), np.concatenate(index))


def log_mel(wave, *, n_samples: int | None = FIXED_SAMPLES) -> np.ndarray:
    """Log-mel (N_MELS, frames) of ``wave`` zero-padded or cut to ``n_samples`` (None keeps the length), standardised."""
    wave = np.asarray(wave, dtype=np.float64)
    if n_samples is not None:
        n_samples = check_positive_int("n_samples", n_samples)
        wave = np.pad(wave[:n_samples], (0, max(0, n_samples - wave.size)))
    db = feats.power_to_db(feats.melspectrogram(wave, sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS))
    return (db - db.mean()) / (db.std() + 1e-8)


def log_mel_batch(waves) -> np.ndarray:
    """float32 (N, 1, N_MELS, 89) log-mel images of fixed-length recordings."""
    return np.stack([log_mel(w) for w in waves])[:, None].astype(np.float32)


def mean_mfcc(waves) -> np.ndarray:
    """Baseline features: the mean and std over time of 13 MFCCs, (N, 26)."""
    out = []
    for w in waves:
        c = feats.mfcc(w, sr=SAMPLE_RATE, n_mfcc=N_MFCC, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS)
        out.append(np.concatenate([c.mean(axis=1), c.std(axis=1)]))
    return np.array(out)


def random_split(labels, speakers, *, test_fraction: float = 0.2, seed: int = 0):
    """Stratified (digit x speaker) random split -> (train_idx, test_idx)."""
    from sklearn.model_selection import train_test_split
    test_fraction = check_real("test_fraction", test_fraction, 0, 1, low_open=True, high_open=True)
    strata = np.char.add(np.asarray(speakers).astype(str), np.asarray(labels).astype(str))
    idx = np.arange(len(labels))
    train, test = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=strata)
    return np.sort(train), np.sort(test)


def speaker_split(speakers, held_out: str):
    """Leave-one-speaker-out: (rows of the other speakers, rows of ``held_out``)."""
    speakers = np.asarray(speakers)
    if held_out not in set(speakers.tolist()):
        raise ValueError(f"`held_out` must be one of the speakers present. Received: held_out={held_out!r}")
    return np.flatnonzero(speakers != held_out), np.flatnonzero(speakers == held_out)


def fit_baseline(x_train, y_train):
    """Standardise + multinomial logistic regression (scikit-learn) on mean MFCCs."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x_train, y_train)


def digit_cnn(n_classes: int = 10) -> nn.Module:
    """1-D CNN over time with the 40 mel bands as channels: two conv blocks (64 channels, kernel 5) with
    max pooling, global max pooling over time, a linear layer. (N, 1, 40, T) -> (N, n_classes)."""
    n_classes = check_positive_int("n_classes", n_classes)
    return nn.Sequential(
        nn.Flatten(1, 2),
        nn.Conv1d(N_MELS, 64, 5, padding=2), nn.BatchNorm1d(64), nn.ReLU(), nn.MaxPool1d(2),
        nn.Conv1d(64, 64, 5, padding=2), nn.BatchNorm1d(64), nn.ReLU(),
        nn.AdaptiveMaxPool1d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(64, n_classes))


def train_cnn(x, y, *, epochs: int = 12, batch_size: int = 16, learning_rate: float = 3e-3, seed: int = 0) -> nn.Module:
    """Adam + cross-entropy with a cosine learning-rate decay on (N, 1, 40, 89) float32 inputs; the CNN in eval mode."""
    epochs, batch_size = check_positive_int("epochs", epochs), check_positive_int("batch_size", batch_size)
    learning_rate = check_positive_float("learning_rate", learning_rate)
    torch.manual_seed(seed)
    model = digit_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=learning_rate)
    xt, yt = torch.from_numpy(np.asarray(x, dtype=np.float32)), torch.from_numpy(np.asarray(y, dtype=np.int64))
    gen = torch.Generator().manual_seed(seed)
    steps = epochs * -(-len(xt) // batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    for _ in range(epochs):
        model.train()
        for b in torch.randperm(len(xt), generator=gen).split(batch_size):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[b]), yt[b]).backward()
            opt.step()
            schedule.step()
    return model.eval()


@torch.no_grad()
def predict(model: nn.Module, x, batch_size: int = 256) -> np.ndarray:
    """Arg-max class of every input, (N,)."""
    xt = torch.from_numpy(np.asarray(x, dtype=np.float32))
    return torch.cat([model(xt[i:i + batch_size]).argmax(1) for i in range(0, len(xt), batch_size)]).numpy()


# ---------------------------------------------------------------- speech to text (CTC)

def make_sequences(waves, labels, pool, *, n_sequences: int, seed: int, min_len: int = 2, max_len: int = 4,
                   noise: float = 1e-3):
    """Deterministic generator: ``n_sequences`` waveforms of ``min_len``..``max_len`` digits drawn from ``pool``.

    Between (and around) recordings goes 50-150 ms of silence; a little Gaussian noise (std ``noise``)
    is added. Returns (list of waveforms, list of int digit arrays).
    """
    n_sequences = check_positive_int("n_sequences", n_sequences)
    if not 1 <= min_len <= max_len:
        raise ValueError(f"`min_len` must be in [1, max_len]. Received: min_len={min_len!r}, max_len={max_len!r}")
    pool = np.asarray(pool)
    if pool.size == 0:
        raise ValueError("`pool` must hold at least one recording index. Received: pool=[]")
    rng = np.random.default_rng(seed)
    seqs, targets = [], []
    for _ in range(n_sequences):
        picks = rng.choice(pool, size=rng.integers(min_len, max_len + 1))
        parts = [np.zeros(rng.integers(400, 1200))]
        for p in picks:
            parts += [waves[p], np.zeros(rng.integers(400, 1200))]
        w = np.concatenate(parts)
        seqs.append(w + noise * rng.standard_normal(w.size))
        targets.append(np.asarray(labels)[picks].astype(np.int64))
    return seqs, targets


class CRNN(nn.Module):
    """Conv1d over mel bands (stride 2 in time) -> bidirectional GRU -> 11 logits (10 digits + blank) per step."""

    def __init__(self, hidden: int = 64):
        super().__init__()
        hidden = check_positive_int("hidden", hidden)
        self.conv = nn.Sequential(nn.Conv1d(N_MELS, hidden, 5, stride=2, padding=2), nn.ReLU(),
                                  nn.Conv1d(hidden, hidden, 5, stride=2, padding=2), nn.ReLU())
        self.rnn = nn.GRU(hidden, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, BLANK + 1)

    def forward(self, x):  # x: (B, N_MELS, T) -> (B, output_length(T), 11)
        h, _ = self.rnn(self.conv(x).transpose(1, 2))
        return self.out(h)


def output_length(n_frames):
    """Time steps after the two stride-2 convolutions (kernel 5, padding 2): ceil(ceil(T / 2) / 2)."""
    return ((np.asarray(n_frames) + 1) // 2 + 1) // 2


def _pad(features):
    lengths = np.array([f.shape[1] for f in features])
    batch = np.zeros((len(features), N_MELS, lengths.max()), dtype=np.float32)
    for i, f in enumerate(features):
        batch[i, :, :f.shape[1]] = f
    return torch.from_numpy(batch), torch.from_numpy(output_length(lengths))


def train_crnn(features, targets, *, epochs: int = 12, batch_size: int = 16, learning_rate: float = 3e-3,
               seed: int = 0) -> CRNN:
    """CTC training (torch.nn.CTCLoss, blank = 10) on a list of (N_MELS, T_i) features and digit targets."""
    epochs, batch_size = check_positive_int("epochs", epochs), check_positive_int("batch_size", batch_size)
    learning_rate = check_positive_float("learning_rate", learning_rate)
    if len(features) != len(targets):
        raise ValueError(f"`features` and `targets` must have the same length. Received: {len(features)} and {len(targets)}")
    torch.manual_seed(seed)
    model, ctc = CRNN(), nn.CTCLoss(blank=BLANK, zero_infinity=True)
    opt = torch.optim.Adam(model.parameters(), lr=learning_rate)
    order = np.argsort([f.shape[1] for f in features])  # similar lengths per batch
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        model.train()
        for k in rng.permutation(len(batches)):
            b = batches[k]
            x, out_len = _pad([features[i] for i in b])
            tgt = torch.from_numpy(np.concatenate([targets[i] for i in b]))
            tgt_len = torch.tensor([len(targets[i]) for i in b])
            log_probs = model(x).log_softmax(-1).transpose(0, 1)  # (T, B, C)
            opt.zero_grad()
            ctc(log_probs, tgt, out_len, tgt_len).backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
    return model.eval()


@torch.no_grad()
def ctc_loss(model: CRNN, features, targets) -> float:
    """Mean CTC loss (per sequence, divided by target length as in torch's 'mean' reduction) of ``model``."""
    x, out_len = _pad(features)
    tgt = torch.from_numpy(np.concatenate(targets))
    tgt_len = torch.tensor([len(t) for t in targets])
    log_probs = model.eval()(x).log_softmax(-1).transpose(0, 1)
    return float(nn.CTCLoss(blank=BLANK, zero_infinity=True)(log_probs, tgt, out_len, tgt_len))


def greedy_decode(best_path, blank: int = BLANK) -> list[int]:
    """Best-path CTC decoding: collapse runs of the same symbol, then drop blanks. (T,) ints -> list."""
    best_path = np.asarray(best_path)
    if best_path.ndim != 1:
        raise ValueError(f"`best_path` must be 1-D. Received: best_path.shape={best_path.shape}")
    out, prev = [], None
    for s in best_path.tolist():
        if s != prev and s != blank:
            out.append(int(s))
        prev = s
    return out


@torch.no_grad()
def transcribe(model: CRNN, features) -> list[list[int]]:
    """Greedy transcription of every (N_MELS, T_i) feature matrix."""
    result = []
    for f in features:
        logits = model(torch.from_numpy(f[None].astype(np.float32)))[0]
        result.append(greedy_decode(logits.argmax(-1).numpy()))
    return result


def edit_distance(ref, hyp) -> int:
    """Levenshtein distance (substitutions, insertions, deletions cost 1) by dynamic programming."""
    ref, hyp = list(ref), list(hyp)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def digit_error_rate(refs, hyps) -> float:
    """Sum of edit distances over the sum of reference lengths (the corpus-level DER, like WER)."""
    refs, hyps = list(refs), list(hyps)
    if len(refs) != len(hyps) or not refs:
        raise ValueError(f"`refs` and `hyps` must be non-empty and of equal length. Received: {len(refs)} and {len(hyps)}")
    total = sum(len(r) for r in refs)
    if total == 0:
        raise ValueError("`refs` must contain at least one digit. Received: total reference length 0")
    return sum(edit_distance(r, h) for r, h in zip(refs, hyps)) / total


def constant_baseline(train_targets) -> list[int]:
    """The most frequent digit repeated the most common number of times (in the training sequences)."""
    lengths = np.bincount([len(t) for t in train_targets])
    digits = np.bincount(np.concatenate(train_targets), minlength=10)
    return [int(digits.argmax())] * int(lengths.argmax())
