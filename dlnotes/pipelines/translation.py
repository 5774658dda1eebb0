r"""English -> French translation with a GRU encoder-decoder, without and with attention.

Taught in: *Machine translation and summarisation* (``book/applications/translation.ipynb``).

The data are the Tatoeba sentence pairs of manythings.org (the file d2l uses), which list short
sentences first. An **encoder** GRU reads the English tokens :math:`x_1..x_S` into states
:math:`\bar h_1..\bar h_S`; a **decoder** GRU, started from :math:`\bar h_S`, predicts the French
tokens one by one. At step :math:`t` the decoder state :math:`h_t` is combined with a context
vector :math:`c_t` into :math:`\tilde h_t = \tanh(W_c [c_t; h_t])` and the next-token
distribution :math:`\operatorname{softmax}(W_o \tilde h_t)`:

- **without attention** (Cho et al., 2014) the context is the same for every step, the last
  encoder state: :math:`c_t = \bar h_S`, so the whole sentence must fit in one vector;
- **with attention** (Luong et al., 2015, the "general" score, Bahdanau et al. 2015 introduced
  the idea) the decoder looks back at every encoder state:

.. math::

    \text{score}(h_t, \bar h_s) = h_t^\top W_a \bar h_s, \qquad
    a_{ts} = \operatorname{softmax}_s\,\text{score}(h_t, \bar h_s), \qquad
    c_t = \sum_s a_{ts} \bar h_s.

Both are trained with teacher forcing (the decoder reads the true previous token) and the
cross-entropy of the next token; both have the same layers and sizes except :math:`W_a`.
Translations are decoded greedily or with beam search, and scored with corpus BLEU
(:func:`dlnotes.scratch.translation.corpus_bleu`, checked against sacrebleu).

In the order the chapter uses them: :func:`load_pairs`, :func:`tokenize`, :func:`split_pairs`
(the held-out English sentences, fixed once, with every French translation of each as its
references), :class:`Vocabulary`, :class:`Seq2Seq`, :func:`train`, :func:`greedy_decode`,
:func:`beam_search`, :func:`translate_all`, :func:`bleu_of`, :func:`copy_baseline` and
:func:`attention_map`.
"""

from __future__ import annotations

import math
import random
import re
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from dlnotes._checks import check_positive_int, check_real
from dlnotes.runtime import _check_seed, seed_everything
from dlnotes.scratch.translation import corpus_bleu

__all__ = ["PAD", "UNK", "BOS", "EOS", "load_pairs", "tokenize", "Split", "split_pairs", "Vocabulary",
           "Seq2Seq", "train", "greedy_decode", "beam_search", "translate_all", "bleu_of", "copy_baseline",
           "attention_map", "RECIPE"]

PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")
# The chapter's recipe (chosen on the validation sentences, never on the test ones; the epochs are
# capped by the chapter's 120 s budget on 2 CPU cores).
RECIPE = {"n_pairs": 30_000, "embedding": 64, "hidden": 128, "epochs": 6, "batch_size": 128,
          "learning_rate": 4e-3, "min_count": 2}


def load_pairs(n_pairs: int = RECIPE["n_pairs"]) -> list[tuple[str, str]]:
    """The first ``n_pairs`` (English, French) pairs of the mirrored ``fra-eng/fra.txt`` (167,130 in all)."""
    from dlnotes.data import fetch

    n_pairs = check_positive_int("n_pairs", n_pairs)
    with zipfile.ZipFile(fetch("fra-eng")) as archive:
        text = archive.read("fra-eng/fra.txt").decode("utf-8")
    pairs = [tuple(line.split("\t")[:2]) for line in text.split("\n") if "\t" in line]
    if n_pairs > len(pairs):
        raise ValueError(f"`n_pairs` must be at most {len(pairs)}. Received: n_pairs={n_pairs}")
    return pairs[:n_pairs]


def tokenize(text: str) -> list[str]:
    """Lower-case, unify apostrophes and non-breaking spaces, and split punctuation off words:
    ``"Va-t'en !"`` -> ``["va-t'en", "!"]``."""
    if not isinstance(text, str):
        raise TypeError(f"`text` must be a string. Received: text={text!r:.80}")
    text = text.lower().replace("\u2019", "'").replace("\u202f", " ").replace("\xa0", " ")
    return re.sub(r"([.,!?;:\"«»])", r" \1 ", text).split()


@dataclass
class Split:
    """Token lists: training pairs, and validation/test English sentences with their references."""
    train: list[tuple[list[str], list[str]]]
    val_sources: list[list[str]]
    val_references: list[list[list[str]]]
    test_sources: list[list[str]]
    test_references: list[list[list[str]]]


def split_pairs(pairs, *, n_test: int = 1000, n_val: int = 500, seed: int = 0) -> Split:
    """Hold out whole English sentences: ``n_test`` for the test set and ``n_val`` for validation.

    Tatoeba often lists one English sentence with several French translations. Splitting *pairs*
    would put "I'm tired." in training with one translation and in the test set with another, so
    the split is by English sentence, and every French translation of a held-out sentence becomes
    one of its references. The split's seed is fixed once; training seeds do not move it.
    """
    n_test, n_val = check_positive_int("n_test", n_test), check_positive_int("n_val", n_val)
    seed = _check_seed(seed)
    by_source = defaultdict(list)
    for en, fr in pairs:
        by_source[en].append(fr)
    sources = sorted(by_source)
    if n_test + n_val >= len(sources):
        raise ValueError(f"`n_test` + `n_val` must leave English sentences to train on; there are {len(sources)}. "
                         f"Received: n_test={n_test}, n_val={n_val}")
    random.Random(seed).shuffle(sources)
    test, val, train = sources[:n_test], sources[n_test:n_test + n_val], sources[n_test + n_val:]

    def held_out(group):
        return [tokenize(en) for en in group], [[tokenize(fr) for fr in by_source[en]] for en in group]

    train_pairs = [(tokenize(en), tokenize(fr)) for en in train for fr in by_source[en]]
    return Split(train_pairs, *held_out(val), *held_out(test))


class Vocabulary:
    """Token <-> id for the training tokens seen at least ``min_count`` times, after the 4 specials.

    Ids follow frequency (most frequent first, ties alphabetical), which the adaptive softmax needs.
    """

    def __init__(self, sentences, min_count: int = RECIPE["min_count"]):
        min_count = check_positive_int("min_count", min_count)
        counts = Counter(t for s in sentences for t in s)
        kept = [t for t, c in counts.items() if c >= min_count]
        self.itos = list(SPECIALS) + sorted(kept, key=lambda t: (-counts[t], t))
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens, *, eos: bool = False) -> list[int]:
        return [self.stoi.get(t, UNK) for t in tokens] + ([EOS] if eos else [])

    def decode(self, ids) -> list[str]:
        """Tokens up to the first ``<eos>``, without specials."""
        out = []
        for i in ids:
            if i == EOS:
                break
            if i > EOS:
                out.append(self.itos[i])
            elif i == UNK:
                out.append("<unk>")
        return out


def _cutoffs(vocab_size: int) -> list[int]:
    """Adaptive-softmax clusters: the 4 specials and most frequent words, then two tails."""
    cutoffs = [c for c in (400, 1600) if c < vocab_size - 1]
    return cutoffs or [max(1, vocab_size // 2)]


def _pad(seqs, value: int = PAD) -> torch.Tensor:
    width = max(len(s) for s in seqs)
    return torch.tensor([list(s) + [value] * (width - len(s)) for s in seqs], dtype=torch.long)


class Seq2Seq(nn.Module):
    """GRU encoder-decoder; ``attention=True`` adds Luong's general attention (see the module docstring).

    Shapes: ``src`` (B, S) and ``tgt_in`` (B, T) token ids, padded with 0; ``forward`` returns
    log-probabilities (B, T, V_tgt) and the attention weights (B, T, S); without attention all the
    weight sits on the last real source position, the fixed context.
    """

    def __init__(self, src_vocab: int, tgt_vocab: int, *, embedding: int = RECIPE["embedding"],
                 hidden: int = RECIPE["hidden"], attention: bool = True):
        super().__init__()
        for name, value in (("src_vocab", src_vocab), ("tgt_vocab", tgt_vocab), ("embedding", embedding), ("hidden", hidden)):
            check_positive_int(name, value)
        if not isinstance(attention, bool):
            raise TypeError(f"`attention` must be True or False. Received: attention={attention!r}")
        self.attention = attention
        self.src_embed = nn.Embedding(src_vocab, embedding, padding_idx=PAD)
        self.tgt_embed = nn.Embedding(tgt_vocab, embedding, padding_idx=PAD)
        self.encoder = nn.GRU(embedding, hidden, batch_first=True)
        self.decoder = nn.GRU(embedding, hidden, batch_first=True)
        self.score = nn.Linear(hidden, hidden, bias=False) if attention else None  # W_a
        self.combine = nn.Linear(2 * hidden, hidden)  # W_c
        # W_o as an adaptive softmax (Grave et al., 2017): the frequent words get a full-size output
        # row, rarer words share smaller projections, so training costs a fraction of a full softmax.
        self.out = nn.AdaptiveLogSoftmaxWithLoss(hidden, tgt_vocab, cutoffs=_cutoffs(tgt_vocab), div_value=4.0)

    def encode(self, src: torch.Tensor):
        """Encoder states (B, S, H), the last real state of each sentence (1, B, H), and the pad mask (B, S)."""
        mask = src != PAD
        lengths = mask.sum(dim=1).clamp(min=1)
        packed = nn.utils.rnn.pack_padded_sequence(self.src_embed(src), lengths.cpu(), batch_first=True,
                                                   enforce_sorted=False)
        states, last = self.encoder(packed)
        states, _ = nn.utils.rnn.pad_packed_sequence(states, batch_first=True, total_length=src.shape[1])
        return states, last, mask

    def decode_steps(self, tgt_in, hidden, states, mask, last):
        """Decoder logits (B, T, V), new hidden (1, B, H) and attention (B, T, S) for the tokens ``tgt_in``."""
        outputs, hidden = self.decoder(self.tgt_embed(tgt_in), hidden)  # h_t: (B, T, H)
        if self.attention:
            scores = outputs @ self.score(states).transpose(1, 2)  # h_t^T W_a h_s: (B, T, S)
            weights = scores.masked_fill(~mask[:, None, :], float("-inf")).softmax(dim=-1)
            context = weights @ states  # (B, T, H)
        else:
            context = last.transpose(0, 1).expand_as(outputs)  # c_t = h_S for every t
            weights = torch.zeros(outputs.shape[0], outputs.shape[1], states.shape[1], device=outputs.device)
            weights.scatter_(2, (mask.sum(1) - 1).clamp(min=0)[:, None, None].expand(-1, outputs.shape[1], 1), 1.0)
        mixed = torch.tanh(self.combine(torch.cat([context, outputs], dim=-1)))  # h~_t: (B, T, H)
        return mixed, hidden, weights

    def log_probs(self, mixed: torch.Tensor) -> torch.Tensor:
        """Next-token log-probabilities (..., V) from the combined states (..., H)."""
        return self.out.log_prob(mixed.reshape(-1, mixed.shape[-1])).reshape(*mixed.shape[:-1], -1)

    def loss(self, src, tgt_in, tgt) -> torch.Tensor:
        """Mean cross-entropy of the next tokens ``tgt`` (B, T), pads excluded."""
        states, last, mask = self.encode(src)
        mixed, _, _ = self.decode_steps(tgt_in, last, states, mask, last)
        keep = tgt != PAD
        return self.out(mixed[keep], tgt[keep]).loss

    def forward(self, src, tgt_in):
        """Log-probabilities (B, T, V) and attention weights (B, T, S)."""
        states, last, mask = self.encode(src)
        mixed, _, weights = self.decode_steps(tgt_in, last, states, mask, last)
        return self.log_probs(mixed), weights


def _batches(pairs, batch_size, rng):
    order = list(range(len(pairs)))
    rng.shuffle(order)
    for i in range(0, len(order), batch_size):
        yield [pairs[j] for j in order[i:i + batch_size]]


def train(model: Seq2Seq, pairs, src_vocab: Vocabulary, tgt_vocab: Vocabulary, *, epochs: int = RECIPE["epochs"],
          batch_size: int = RECIPE["batch_size"], learning_rate: float = RECIPE["learning_rate"], seed: int = 0,
          clip: float = 1.0) -> list[float]:
    """Teacher-forced training with Adam and gradient-norm clipping; returns the mean loss per epoch.

    Loss: the cross-entropy of each next French token (``<eos>`` included, pads ignored).
    """
    if not isinstance(model, Seq2Seq):
        raise TypeError(f"`model` must be a Seq2Seq. Received: model of type {type(model).__name__}")
    epochs, batch_size = check_positive_int("epochs", epochs), check_positive_int("batch_size", batch_size)
    learning_rate = check_real("learning_rate", learning_rate, 0.0, low_open=True)
    seed = seed_everything(seed)
    if not pairs:
        raise ValueError("`pairs` must hold at least one (source, target) pair. Received: pairs=[]")
    encoded = [(src_vocab.encode(s), tgt_vocab.encode(t, eos=True)) for s, t in pairs]
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    rng, history = random.Random(seed), []
    model.train()
    for _ in range(epochs):
        total, count = 0.0, 0
        for batch in _batches(encoded, batch_size, rng):
            src = _pad([s for s, _ in batch]).to(device)
            tgt = _pad([t for _, t in batch]).to(device)
            tgt_in = torch.cat([torch.full_like(tgt[:, :1], BOS), tgt[:, :-1]], dim=1)
            loss = model.loss(src, tgt_in, tgt)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            total, count = total + loss.item() * len(batch), count + len(batch)
        history.append(total / count)
    model.eval()
    return history


def _check_max_len(max_len) -> int:
    return check_positive_int("max_len", max_len)


@torch.no_grad()
def greedy_decode(model: Seq2Seq, sources, src_vocab: Vocabulary, tgt_vocab: Vocabulary, *, max_len: int = 20,
                  batch_size: int = 256) -> list[list[str]]:
    """Translate token lists by taking the most likely token at every step (batched)."""
    max_len = _check_max_len(max_len)
    device = next(model.parameters()).device
    model.eval()
    results = []
    for i in range(0, len(sources), batch_size):
        src = _pad([src_vocab.encode(s) or [UNK] for s in sources[i:i + batch_size]]).to(device)
        states, last, mask = model.encode(src)
        hidden, token = last, torch.full((src.shape[0], 1), BOS, dtype=torch.long, device=device)
        steps = []
        for _ in range(max_len):
            mixed, hidden, _ = model.decode_steps(token, hidden, states, mask, last)
            token = model.out.predict(mixed[:, -1])[:, None]
            steps.append(token)
        ids = torch.cat(steps, dim=1).tolist()
        results += [tgt_vocab.decode(row) for row in ids]
    return results


@torch.no_grad()
def beam_search(model: Seq2Seq, source, src_vocab: Vocabulary, tgt_vocab: Vocabulary, *, beam: int = 4,
                max_len: int = 20, alpha: float = 0.7) -> list[str]:
    r"""Keep the ``beam`` most probable partial translations at each step; among finished ones return
    the best by length-normalised log-probability :math:`\log p(y) / |y|^\alpha` (Wu et al., 2016)."""
    beam, max_len = check_positive_int("beam", beam), _check_max_len(max_len)
    alpha = check_real("alpha", alpha, 0.0)
    device = next(model.parameters()).device
    model.eval()
    src = _pad([src_vocab.encode(source) or [UNK]]).to(device)
    states, last, mask = model.encode(src)
    hyps = [([], 0.0, last)]  # (token ids, log-prob, hidden)
    finished = []
    for _ in range(max_len):
        tokens = torch.tensor([[h[0][-1] if h[0] else BOS] for h in hyps], device=device)
        hidden = torch.cat([h[2] for h in hyps], dim=1)
        n = len(hyps)
        mixed, hidden, _ = model.decode_steps(tokens, hidden, states.expand(n, -1, -1), mask.expand(n, -1),
                                              last.expand(-1, n, -1))
        logp = model.log_probs(mixed[:, -1]) + torch.tensor([h[1] for h in hyps], device=device)[:, None]
        top = logp.flatten().topk(beam)
        candidates = []
        for score, flat in zip(top.values.tolist(), top.indices.tolist()):
            row, token = divmod(flat, logp.shape[1])
            ids = hyps[row][0] + [token]
            if token == EOS:
                finished.append((ids, score / (len(ids) ** alpha)))
            else:
                candidates.append((ids, score, hidden[:, row:row + 1]))
        if not candidates or len(finished) >= beam:
            break
        hyps = candidates
    if not finished:  # nothing ended within max_len: take the best open hypothesis
        finished = [(ids, score / (len(ids) ** alpha)) for ids, score, _ in hyps]
    return tgt_vocab.decode(max(finished, key=lambda f: f[1])[0])


def translate_all(model, sources, src_vocab, tgt_vocab, *, beam: int = 1, max_len: int = 20) -> list[list[str]]:
    """Greedy decoding for ``beam=1``, else :func:`beam_search` sentence by sentence."""
    beam = check_positive_int("beam", beam)
    if beam == 1:
        return greedy_decode(model, sources, src_vocab, tgt_vocab, max_len=max_len)
    return [beam_search(model, s, src_vocab, tgt_vocab, beam=beam, max_len=max_len) for s in sources]


def bleu_of(hypotheses, references) -> float:
    """Corpus BLEU (0-100) of token lists against their lists of references."""
    return corpus_bleu(list(hypotheses), list(references))["bleu"]


def copy_baseline(sources) -> list[list[str]]:
    """The baseline "translation" that copies the English tokens: it scores on names, numbers, punctuation."""
    return [list(s) for s in sources]


@torch.no_grad()
def attention_map(model: Seq2Seq, source, translation, src_vocab: Vocabulary, tgt_vocab: Vocabulary) -> np.ndarray:
    """Attention weights (len(translation) + 1, len(source)) while the model reads its own ``translation``
    (the last row is the step that emits ``<eos>``)."""
    if not model.attention:
        raise ValueError("`model` has no attention: build it with Seq2Seq(..., attention=True).")
    device = next(model.parameters()).device
    src = _pad([src_vocab.encode(source)]).to(device)
    tgt_in = torch.tensor([[BOS] + tgt_vocab.encode(translation)], device=device)
    _, weights = model(src, tgt_in)
    return weights[0].cpu().numpy()


# --- summarisation: this book's own chapters ----------------------------------------------------------------------

_NOT_CONTENT = ("Prerequisites", "Summary", "Exercises", "What's next")


def _plain_markdown(text: str) -> str:
    """Markdown as prose: code, directives, math, HTML, glued numbers and citations removed, link texts kept."""
    text = re.sub(r"^(```+|~~~+).*?^\1\s*$", "", text, flags=re.M | re.S)  # code and directive blocks
    text = re.sub(r"^:::.*?^:::\s*$", "", text, flags=re.M | re.S)
    text = re.sub(r"\$\$.*?\$\$|\$[^$\n]+\$", "", text, flags=re.S)  # math
    text = re.sub(r"\{(?:glue|glue:text|cite|cite:p|cite:t|numref)\}`[^`]*`", "", text)
    text = re.sub(r"\{(?:doc|ref|term)\}`([^`<]*?)\s*(?:<[^>]*>)?`", r"\1", text)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # [text](url)
    text = re.sub(r"<[^>]+>|`|\*\*?|^#+ .*$|^\s*\|.*\|\s*$", "", text, flags=re.M)  # HTML, code marks, headings, tables
    return text


def chapter_sections(path) -> dict[str, str]:
    """A chapter notebook's Markdown by ``## `` section (``""`` holds the text before the first one)."""
    import json
    from pathlib import Path

    path = Path(path)
    if path.suffix != ".ipynb" or not path.is_file():
        raise ValueError(f"`path` must be an existing .ipynb chapter. Received: path={str(path)!r}")
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    markdown = "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    sections, name = {"": []}, ""
    for line in markdown.split("\n"):
        heading = re.match(r"^## (.+?)\s*$", line)
        if heading:
            name = heading.group(1)
            sections.setdefault(name, [])
        else:
            sections[name].append(line)
    return {k: "\n".join(v) for k, v in sections.items()}


@dataclass
class Document:
    """One chapter for summarisation: its body's sentences and its own *Summary* as the reference."""
    name: str
    sentences: list[str]
    reference: str


def book_documents(book_dir, *, exclude=("translation",)) -> list[Document]:
    """Every chapter under ``book_dir`` (``book/`` of the repository) that has a *Summary* section.

    The document is the prose of every section except *Prerequisites*, *Summary*, *Exercises* and
    *What's next*; the reference summary is the *Summary* section, written by the chapter's author.
    """
    from pathlib import Path

    from dlnotes.scratch.translation import split_sentences

    book_dir = Path(book_dir)
    if not book_dir.is_dir():
        raise ValueError("`book_dir` must be the book/ folder of a dlnotes checkout (on Colab: git clone the "
                         f"repository first). Received: book_dir={str(book_dir)!r}")
    documents = []
    for path in sorted(book_dir.rglob("*.ipynb")):
        if path.stem in exclude or ".ipynb_checkpoints" in path.parts:
            continue
        sections = chapter_sections(path)
        if "Summary" not in sections:
            continue
        body = "\n\n".join(_plain_markdown(text) for name, text in sections.items() if name and name not in _NOT_CONTENT)
        sentences = split_sentences(body)
        reference = " ".join(split_sentences(_plain_markdown(sections["Summary"]), min_words=1))
        if sentences and reference:
            documents.append(Document(f"{path.parent.name}/{path.stem}", sentences, reference))
    return documents
