r"""Sentence-level sentiment analysis: a bag-of-words baseline and two small PyTorch models.

Taught in: *Sentiment analysis* (``book/applications/sentiment.ipynb``).

The data are the UCI *Sentiment Labelled Sentences* (Kotzias et al., KDD 2015): 1,000 sentences
from each of Amazon, IMDb and Yelp, each labelled :math:`y \in \{0, 1\}` (negative, positive),
500 of each label per source. Every model below outputs one logit :math:`z(s)` per sentence
:math:`s` and is trained with the binary cross-entropy

.. math::

    L = -\frac{1}{N} \sum_{n=1}^{N} \big[y_n \log \sigma(z_n) + (1 - y_n) \log (1 - \sigma(z_n))\big].

In the order the chapter uses them: :func:`parse_labelled` and :func:`load_sentences` (the three
files, split on ``\n`` only), :func:`stratified_split` (the held-out test set, fixed once),
:func:`tokenize` and :class:`Vocabulary` (built on training sentences only, with a padding id 0
and an unknown-word id 1), :func:`fit_bow_baseline` (scikit-learn's ``TfidfVectorizer`` +
``LogisticRegression``, its ``C`` chosen by cross-validation on the training sentences),
:class:`MeanEmbedding` (fastText-style mean-pooled embeddings, Joulin et al. 2017) and
:class:`TextCNN` (a 1-D convolution over word embeddings, max-pooled over time),
:func:`build_model`, :func:`train` and :func:`predict_proba`, the metrics :func:`accuracy` and
:func:`roc_auc` (tested against ``sklearn.metrics``), :func:`vader_compound` and
:class:`PriorMeanEmbedding` (prior knowledge: the rule-based VADER score of a sentence, added to
the mean-pooled logit with a learned weight), :func:`word_contributions` (the exact
per-word terms of the mean-pooled logit), :func:`occlusion` (drop one word, see the change in
:math:`P(\text{positive})`), and :func:`cross_source_splits` (train on two sources, test on the
third).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn

from dlnotes._checks import check_choice, check_ndarray, check_positive_int, check_real
from dlnotes.runtime import _check_seed

__all__ = ["SOURCES", "Sentences", "parse_labelled", "load_sentences", "stratified_split", "validation_split",
           "tokenize", "with_ngrams", "Vocabulary", "fit_bow_baseline", "bow_top_words", "MeanEmbedding",
           "PriorMeanEmbedding", "TextCNN", "build_model", "train", "predict_proba", "vader_compound", "accuracy",
           "roc_auc", "word_contributions", "occlusion", "cross_source_splits", "single_thread", "MEAN", "CNN",
           "MODELS", "VADER_CUTOFF", "fit_models", "source_accuracy"]

SOURCES = ("amazon", "imdb", "yelp")


@contextlib.contextmanager
def single_thread():
    """Run the block with one torch thread and one BLAS/OpenMP thread, then restore the counts.

    The models here are tiny (batches of 32 short sentences, a sparse logistic regression), so
    extra threads buy nothing; on a machine whose cores are shared they cost a lot, because
    waiting threads spin (measured on the course's 2-core machine under load: the three fits
    took over 10 times longer with 2 threads than with 1).
    """
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(threads)


def _check_texts(name: str, value) -> list[str]:
    if isinstance(value, str) or not all(isinstance(t, str) for t in value):
        raise TypeError(f"`{name}` must be a sequence of str. Received: {name} of type {type(value).__name__}")
    return list(value)


def _check_labels(name: str, value, n: int | None = None) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim != 1 or not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool) \
            or not np.isin(array, (0, 1)).all():
        raise ValueError(f"`{name}` must be a 1-D array of 0/1 labels. Received: {name}={value!r}")
    if n is not None and len(array) != n:
        raise ValueError(f"`{name}` must have {n} entries, one per sentence. Received: len({name})={len(array)}")
    return array.astype(np.int64)


# --- data -----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sentences:
    """The labelled sentences: ``texts`` (list of str), ``labels`` (int64, shape (n,)), ``sources`` (str, shape (n,))."""

    texts: list
    labels: np.ndarray
    sources: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, index) -> "Sentences":
        """The rows ``index`` (an integer array), in that order."""
        index = np.asarray(index, dtype=np.int64)
        return Sentences([self.texts[i] for i in index], self.labels[index], self.sources[index])


def parse_labelled(text: str) -> tuple[list[str], np.ndarray]:
    r"""Sentences and labels of one ``sentence<TAB>0|1`` file.

    Lines are split on ``"\n"`` only (``str.splitlines`` would also split on ``"\x85"``, which two
    IMDb sentences contain); the label is what follows the *last* tab; no quote character is
    special. Empty lines are skipped; anything else that is not ``text<TAB>0`` or ``text<TAB>1``
    raises ``ValueError`` naming the line.
    """
    if not isinstance(text, str):
        raise TypeError(f"`text` must be a str. Received: text of type {type(text).__name__}")
    sentences, labels = [], []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        sentence, tab, label = line.rpartition("\t")
        if not tab or label.strip() not in ("0", "1") or not sentence.strip():
            raise ValueError(f"line {number} is not `sentence<TAB>0|1`. Received: {line[:80]!r}")
        sentences.append(sentence.strip())
        labels.append(int(label.strip()))
    return sentences, np.array(labels, dtype=np.int64)


def load_sentences(sources=SOURCES) -> Sentences:
    """The sentences of ``sources`` (default all three), through ``dlnotes.data.fetch("sentiment-<source>")``."""
    from dlnotes import data

    if isinstance(sources, str) or not sources:
        raise ValueError(f"`sources` must be a non-empty sequence of {SOURCES}. Received: sources={sources!r}")
    texts, labels, names = [], [], []
    for source in sources:
        check_choice("sources", source, SOURCES)
        with open(data.fetch(f"sentiment-{source}"), encoding="utf-8", newline="") as handle:
            sentences, y = parse_labelled(handle.read())
        texts += sentences
        labels.append(y)
        names += [source] * len(sentences)
    return Sentences(texts, np.concatenate(labels), np.array(names))


def stratified_split(labels, groups, *, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    r"""Indices ``(train, test)`` of a split stratified by ``(group, label)``.

    In each stratum of :math:`n_s` rows a permutation drawn from ``numpy.random.default_rng(seed)``
    puts :math:`\mathrm{round}(f\, n_s)` rows in the test set (``f = test_fraction``, default 0.2),
    so every source keeps its label balance. The two index arrays are sorted, disjoint and
    together cover ``range(n)``. The seed is the *split's*; the models have seeds of their own.
    """
    labels = _check_labels("labels", labels)
    groups = np.asarray(groups)
    if groups.shape != labels.shape:
        raise ValueError(f"`groups` must have one entry per label. Received: groups.shape={groups.shape}")
    test_fraction = check_real("test_fraction", test_fraction, 0.0, 1.0, low_open=True, high_open=True)
    rng = np.random.default_rng(_check_seed(seed))
    test = []
    for group in sorted(set(groups.tolist())):
        for label in (0, 1):
            stratum = np.flatnonzero((groups == group) & (labels == label))
            test.append(rng.permutation(stratum)[: int(round(test_fraction * len(stratum)))])
    test = np.sort(np.concatenate(test))
    train = np.setdiff1d(np.arange(len(labels)), test)
    return train, test


def validation_split(labels, groups, *, val_fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(fit, val)`` positions within the training rows: :func:`stratified_split` with ``val_fraction``."""
    return stratified_split(labels, groups, test_fraction=val_fraction, seed=seed)


# --- tokens ---------------------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[!?]")


def tokenize(text: str) -> list[str]:
    """Lower-cased words (letters and digits, with an apostrophe suffix such as ``n't``), and ``!``/``?``.

    ``tokenize("Great phone, didn't break!") == ["great", "phone", "didn't", "break", "!"]``.
    """
    if not isinstance(text, str):
        raise TypeError(f"`text` must be a str. Received: text of type {type(text).__name__}")
    return _TOKEN.findall(text.lower())


def with_ngrams(tokens: list[str], n: int = 2) -> list[str]:
    """``tokens`` followed by its adjacent pairs joined by a space when ``n=2`` (fastText's bigram features)."""
    return tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:])] if n == 2 else tokens


@dataclass
class Vocabulary:
    """Words to integer ids: 0 is padding (``"<pad>"``), 1 the unknown word (``"<unk>"``), then words by count.

    Built from the *training* sentences only (:meth:`from_texts`), so a test sentence's unseen
    words all map to id 1. Ties in count are broken alphabetically, so the ids are deterministic.
    """

    words: list = field(default_factory=list)
    ngrams: int = 1
    PAD, UNK = 0, 1

    def __post_init__(self):
        self.index = {word: i for i, word in enumerate(self.words)}

    @classmethod
    def from_texts(cls, texts, *, min_count: int = 1, ngrams: int = 1) -> "Vocabulary":
        """Every token (and, with ``ngrams=2``, every word pair ``"w1 w2"``) seen ``min_count`` times in ``texts``."""
        texts = _check_texts("texts", texts)
        min_count = check_positive_int("min_count", min_count)
        ngrams = check_choice("ngrams", ngrams, (1, 2))
        counts = Counter(t for text in texts for t in with_ngrams(tokenize(text), ngrams))
        kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        return cls(["<pad>", "<unk>"] + kept, ngrams)

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> list[int]:
        """The ids of ``tokenize(text)`` (then its word pairs when ``ngrams=2``); unknown ones are 1."""
        return self.encode_tokens(tokenize(text))

    def encode_tokens(self, tokens) -> list[int]:
        """:meth:`encode` for a list of tokens already split."""
        return [self.index.get(t, self.UNK) for t in with_ngrams(list(tokens), self.ngrams)]

    def decode(self, ids) -> list[str]:
        """The words of ``ids``, padding left out."""
        return [self.words[i] for i in ids if i != self.PAD]

    def batch(self, texts, *, max_len: int | None = None) -> torch.Tensor:
        """Ids of shape ``(n, T)``, right-padded with 0 to the longest sentence (cut at ``max_len``; at least 1)."""
        texts = _check_texts("texts", texts)
        if max_len is not None:
            max_len = check_positive_int("max_len", max_len)
        encoded = [self.encode(t)[:max_len] if max_len else self.encode(t) for t in texts]
        width = max([1] + [len(e) for e in encoded])
        ids = torch.zeros(len(texts), width, dtype=torch.int64)
        for row, e in enumerate(encoded):
            ids[row, : len(e)] = torch.tensor(e, dtype=torch.int64)
        return ids


# --- the bag-of-words baseline --------------------------------------------------------------------------------------

def fit_bow_baseline(texts, labels, *, Cs=(1.0, 3.0, 10.0, 30.0, 100.0, 300.0), folds: int = 5, ngram_max: int = 2,
                     seed: int = 0, vader: bool = False):
    r"""TF-IDF of word n-grams + logistic regression, ``C`` chosen by stratified ``folds``-fold CV on ``texts``.

    The model is :math:`P(y=1 \mid s) = \sigma(w^\top x(s) + b)` with :math:`x(s)` the
    L2-normalised TF-IDF vector of the sentence's 1- to ``ngram_max``-grams (tokens from
    :func:`tokenize`), fitted by minimising :math:`\tfrac12 \|w\|^2 + C \sum_n \mathrm{BCE}_n`.
    The vectorizer is refitted inside each fold (a ``Pipeline`` in ``GridSearchCV``), so no
    held-out fold shapes the vocabulary it is scored with. Returns the refitted
    ``GridSearchCV``; ``.best_params_["logisticregression__C"]`` is the chosen ``C``. Runs on one
    thread (:func:`single_thread`). ``vader=True`` appends one more feature to :math:`x(s)`,
    :func:`vader_compound` of the sentence (the control for :class:`PriorMeanEmbedding`: the same
    prior knowledge given to the linear model).
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import FeatureUnion, make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    texts = _check_texts("texts", texts)
    labels = _check_labels("labels", labels, len(texts))
    if isinstance(Cs, (str, bytes)) or not Cs or not all(isinstance(c, (int, float)) and c > 0 for c in Cs):
        raise ValueError(f"`Cs` must be a non-empty sequence of positive numbers. Received: Cs={Cs!r}")
    folds = check_positive_int("folds", folds)
    ngram_max = check_positive_int("ngram_max", ngram_max)
    if not isinstance(vader, bool):
        raise TypeError(f"`vader` must be True or False. Received: vader={vader!r}")
    features = TfidfVectorizer(tokenizer=tokenize, lowercase=False, token_pattern=None, ngram_range=(1, ngram_max),
                               sublinear_tf=True)
    if vader:
        features = FeatureUnion([("tfidf", features), ("vader", FunctionTransformer(_vader_column))])
    pipeline = make_pipeline(features, LogisticRegression(max_iter=2000))
    search = GridSearchCV(pipeline, {"logisticregression__C": [float(c) for c in Cs]},
                          cv=StratifiedKFold(folds, shuffle=True, random_state=_check_seed(seed)), scoring="accuracy")
    with single_thread():
        return search.fit(texts, labels)


def _vader_column(texts) -> np.ndarray:
    return vader_compound(list(texts))[:, None]


def bow_top_words(search, k: int = 10) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """The ``k`` n-grams with the most negative and the most positive coefficients ``w`` of the baseline."""
    k = check_positive_int("k", k)
    pipeline = search.best_estimator_ if hasattr(search, "best_estimator_") else search
    vectorizer, model = pipeline.steps[0][1], pipeline.steps[-1][1]
    names, w = vectorizer.get_feature_names_out(), model.coef_[0]
    order = np.argsort(w, kind="stable")
    return [(names[i], float(w[i])) for i in order[:k]], [(names[i], float(w[i])) for i in order[::-1][:k]]


# --- the neural models ----------------------------------------------------------------------------------------------

def _mask(ids: torch.Tensor) -> torch.Tensor:
    return (ids != Vocabulary.PAD).float()


class MeanEmbedding(nn.Module):
    r"""fastText-style classifier: the mean of the words' embeddings, then one linear unit.

    .. math::

        z(s) = b + w^\top \frac{1}{|s|} \sum_{t \in s} e_t = b + \sum_{t \in s} \frac{w^\top e_t}{|s|},

    so each word adds exactly :math:`w^\top e_t / |s|` to the logit (:func:`word_contributions`).
    Input ids ``(n, T)`` with 0 as padding (left out of the mean); output logits ``(n,)``.
    ``dropout`` zeroes whole words during training (word dropout).
    """

    def __init__(self, vocab_size: int, embedding_dim: int = 64, dropout: float = 0.0):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=Vocabulary.PAD)
        self.dropout = dropout
        self.linear = nn.Linear(embedding_dim, 1)

    def word_logits(self, ids: torch.Tensor) -> torch.Tensor:
        """:math:`w^\\top e_t` for every position, shape ``(n, T)`` (not divided by the length)."""
        return self.embedding(ids) @ self.linear.weight[0]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = _mask(ids)
        if self.training and self.dropout > 0:
            mask = mask * (torch.rand_like(mask) >= self.dropout)
        mean = (self.embedding(ids) * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)
        return self.linear(mean).squeeze(-1)


class PriorMeanEmbedding(MeanEmbedding):
    r""":class:`MeanEmbedding` plus a score of the sentence computed outside the model, with a learned weight.

    .. math::

        z(s) = b + w^\top \frac{1}{|s|} \sum_{t \in s} e_t + a \, c(s),

    with :math:`c(s)` given per sentence (the chapter uses :func:`vader_compound`) and :math:`a`
    a parameter that starts at 0. Input ids ``(n, T)`` and ``prior`` float32 ``(n,)``; output
    logits ``(n,)``. :func:`train` and :func:`predict_proba` take the scores as ``prior=``.
    """

    def __init__(self, vocab_size: int, embedding_dim: int = 64, dropout: float = 0.0):
        super().__init__(vocab_size, embedding_dim, dropout)
        self.prior_weight = nn.Parameter(torch.zeros(()))

    def forward(self, ids: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        return super().forward(ids) + self.prior_weight * prior


class TextCNN(nn.Module):
    r"""A 1-D convolution over the word embeddings, max-pooled over time (Kim 2014, one layer).

    For each kernel width :math:`k` in ``kernel_sizes`` and filter :math:`j`,
    :math:`h_j = \max_t \mathrm{ReLU}(W_j \cdot [e_t; \dots; e_{t+k-1}] + c_j)`; the
    concatenated :math:`h` goes through dropout and one linear unit. Ids ``(n, T)`` are padded
    to at least the largest kernel; padding positions are masked out of the max.
    """

    def __init__(self, vocab_size: int, embedding_dim: int = 64, filters: int = 64, kernel_sizes=(2, 3, 4),
                 dropout: float = 0.5):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=Vocabulary.PAD)
        self.kernel_sizes = tuple(kernel_sizes)
        self.convs = nn.ModuleList(nn.Conv1d(embedding_dim, filters, k) for k in self.kernel_sizes)
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(filters * len(self.kernel_sizes), 1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        width = max(self.kernel_sizes)
        if ids.shape[1] < width:
            ids = nn.functional.pad(ids, (0, width - ids.shape[1]), value=Vocabulary.PAD)
        x = self.embedding(ids).transpose(1, 2)                       # (n, d, T)
        lengths = (ids != Vocabulary.PAD).sum(1).clamp(min=1)          # (n,)
        pooled = []
        for k, conv in zip(self.kernel_sizes, self.convs):
            h = torch.relu(conv(x))                                    # (n, filters, T - k + 1)
            valid = torch.arange(h.shape[2], device=ids.device)[None, :] < (lengths - k + 1).clamp(min=1)[:, None]
            pooled.append(h.masked_fill(~valid[:, None, :], 0.0).amax(2))   # ReLU >= 0, so 0 is a safe fill
        return self.linear(self.dropout(torch.cat(pooled, 1))).squeeze(-1)


def build_model(kind: str, vocab_size: int, *, embedding_dim: int = 64, dropout: float | None = None, **kwargs) -> nn.Module:
    """``"mean"`` -> :class:`MeanEmbedding` (default word dropout 0.1), ``"mean_vader"`` ->
    :class:`PriorMeanEmbedding` (the same), ``"cnn"`` -> :class:`TextCNN` (dropout 0.5)."""
    check_choice("kind", kind, ("mean", "mean_vader", "cnn"))
    vocab_size = check_positive_int("vocab_size", vocab_size)
    embedding_dim = check_positive_int("embedding_dim", embedding_dim)
    if kind in ("mean", "mean_vader"):
        dropout = 0.1 if dropout is None else check_real("dropout", dropout, 0.0, 1.0, high_open=True)
        return (MeanEmbedding if kind == "mean" else PriorMeanEmbedding)(vocab_size, embedding_dim, dropout)
    dropout = 0.5 if dropout is None else check_real("dropout", dropout, 0.0, 1.0, high_open=True)
    return TextCNN(vocab_size, embedding_dim, dropout=dropout, **kwargs)


def _check_ids(name: str, value) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.dtype != torch.int64 or value.ndim != 2:
        raise TypeError(f"`{name}` must be an int64 tensor of shape (n, T). Received: {name}={type(value).__name__}"
                        + (f" with dtype {value.dtype} and shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else ""))
    return value


def _check_prior(name: str, model: nn.Module, prior, n: int) -> torch.Tensor | None:
    """``prior`` as float32 ``(n,)`` when ``model`` takes one (a :class:`PriorMeanEmbedding`), else it must be None."""
    takes = isinstance(model, PriorMeanEmbedding)
    if prior is None:
        if takes:
            raise ValueError(f"A PriorMeanEmbedding needs its sentence scores: pass `{name}`, one float per row. "
                             f"Received: {name}=None")
        return None
    if not takes:
        raise ValueError(f"`{name}` is only for a PriorMeanEmbedding; this model is a {type(model).__name__}. "
                         f"Received: {name} of type {type(prior).__name__}")
    array = np.asarray(prior.detach().cpu() if isinstance(prior, torch.Tensor) else prior)
    if array.dtype.kind not in "fiu" or array.shape != (n,) or not np.isfinite(array).all():
        raise ValueError(f"`{name}` must hold {n} finite numbers, one per row, shape ({n},). "
                         f"Received: {name} with dtype {array.dtype} and shape {array.shape}")
    return torch.as_tensor(array, dtype=torch.float32)


def _logits(model: nn.Module, ids: torch.Tensor, prior: torch.Tensor | None) -> torch.Tensor:
    return model(ids) if prior is None else model(ids, prior)


def _trim(ids: torch.Tensor) -> torch.Tensor:
    """Drop the all-padding columns at the right of a batch."""
    width = int((ids != Vocabulary.PAD).sum(1).max().clamp(min=1))
    return ids[:, :width]


@torch.no_grad()
def predict_proba(model: nn.Module, ids: torch.Tensor, *, batch_size: int = 512, prior=None) -> np.ndarray:
    r""":math:`P(\text{positive}) = \sigma(z)` for each row of ``ids`` ``(n, T)``, float64 array ``(n,)``, in eval mode.

    ``prior``: the sentence scores ``(n,)`` of a :class:`PriorMeanEmbedding` (only for that model).
    """
    ids = _check_ids("ids", ids)
    batch_size = check_positive_int("batch_size", batch_size)
    prior = _check_prior("prior", model, prior, len(ids))
    was_training = model.training
    model.eval()
    out = [torch.sigmoid(_logits(model, _trim(ids[i:i + batch_size]), None if prior is None else prior[i:i + batch_size]))
           for i in range(0, len(ids), batch_size)]
    model.train(was_training)
    return torch.cat(out).double().numpy() if out else np.zeros(0)


def train(model: nn.Module, ids: torch.Tensor, labels, *, epochs: int = 20, batch_size: int = 32,
          learning_rate: float = 3e-3, weight_decay: float = 0.0, seed: int = 0, validation_data=None,
          prior=None) -> dict:
    r"""Adam (AdamW when ``weight_decay`` > 0) on the binary cross-entropy, shuffled batches from ``seed``.

    With ``validation_data=(val_ids, val_labels)`` (rows of the *training* sentences set aside)
    the model keeps the weights of the epoch with the best validation accuracy (first best on
    ties), a form of early stopping; the test sentences are never seen. ``seed`` first
    re-initialises every layer (``reset_parameters``) and then draws the batches, so the same seed
    gives the same model whatever the model's weights were before.
    Returns a history dict: ``loss`` per epoch and, with validation data, ``val_accuracy`` and
    ``best_epoch`` (1-based). Runs on one thread (:func:`single_thread`). A
    :class:`PriorMeanEmbedding` takes its sentence scores as ``prior`` ``(n,)`` and, for validation,
    as a third element ``(val_ids, val_labels, val_prior)``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module. Received: model of type {type(model).__name__}")
    ids = _check_ids("ids", ids)
    labels = _check_labels("labels", labels, len(ids))
    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size)
    learning_rate = check_real("learning_rate", learning_rate, 0.0, low_open=True)
    weight_decay = check_real("weight_decay", weight_decay, 0.0)
    seed = _check_seed(seed)
    prior = _check_prior("prior", model, prior, len(ids))
    if validation_data is not None:
        size = 2 if prior is None else 3
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != size:
            what = "a pair (ids, labels)" if size == 2 else "a triple (ids, labels, prior)"
            raise TypeError(f"`validation_data` must be {what}. Received: validation_data={validation_data!r}")
        val_ids = _check_ids("validation_data[0]", validation_data[0])
        val_labels = _check_labels("validation_data[1]", validation_data[1], len(val_ids))
        val_prior = _check_prior("validation_data[2]", model, validation_data[2] if size == 3 else None, len(val_ids))
    with single_thread():
        return _train(model, ids, labels, epochs, batch_size, learning_rate, weight_decay, seed,
                      None if validation_data is None else (val_ids, val_labels, val_prior), prior)


def _train(model, ids, labels, epochs, batch_size, learning_rate, weight_decay, seed, validation_data, prior) -> dict:
    if validation_data is not None:
        val_ids, val_labels, val_prior = validation_data
    torch.manual_seed(seed)
    for module in model.modules():
        if module is not model and hasattr(module, "reset_parameters"):
            module.reset_parameters()
    if getattr(model, "embedding", None) is not None:
        with torch.no_grad():
            model.embedding.weight[Vocabulary.PAD].zero_()
    if isinstance(model, PriorMeanEmbedding):
        with torch.no_grad():
            model.prior_weight.zero_()
    optimizer = (torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=weight_decay) if weight_decay
                 else torch.optim.Adam(model.parameters(), lr=learning_rate))
    generator = torch.Generator().manual_seed(seed)
    y = torch.from_numpy(labels).float()
    history = {"loss": []}
    if validation_data is not None:
        history.update(val_accuracy=[], best_epoch=0)
        best, best_state = -1.0, None
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(ids), generator=generator)
        total = 0.0
        for start in range(0, len(ids), batch_size):
            batch = order[start:start + batch_size]
            logits = _logits(model, _trim(ids[batch]), None if prior is None else prior[batch])
            loss = nn.functional.binary_cross_entropy_with_logits(logits, y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        history["loss"].append(total / len(ids))
        if validation_data is not None:
            score = accuracy(val_labels, predict_proba(model, val_ids, prior=val_prior) >= 0.5)
            history["val_accuracy"].append(score)
            if score > best:
                best, best_state, history["best_epoch"] = score, copy.deepcopy(model.state_dict()), len(history["loss"])
    if validation_data is not None:
        model.load_state_dict(best_state)
    model.eval()
    return history


# --- prior knowledge: VADER -------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


@functools.lru_cache(maxsize=None)
def _compound(text: str) -> float:
    # Cached: the baseline with VADER's feature (a FunctionTransformer in GridSearchCV) asks for the same
    # training sentences in every fold and for every C; the score of a sentence never changes.
    return _vader().polarity_scores(text)["compound"]


def vader_compound(texts) -> np.ndarray:
    r"""VADER's compound score of each sentence (Hutto and Gilbert 2014): float64 ``(n,)`` in :math:`[-1, 1]`.

    VADER adds up the valences (-4 to +4, rated by people) of the ~7,500 words, emoticons and
    slang of its lexicon that occur in the sentence, adjusted by rules for negation ("not good"),
    intensifiers ("very"), contrast ("but"), capitals and "!", and squashes the sum :math:`x` to
    :math:`x / \sqrt{x^2 + 15}`. Nothing of it is learned from our data: it is prior knowledge,
    shipped offline by the ``vaderSentiment`` package.
    """
    texts = _check_texts("texts", texts)
    return np.array([_compound(t) for t in texts], dtype=np.float64)


# --- metrics --------------------------------------------------------------------------------------------------------

def _check_pair(y_true, other, name: str) -> tuple[np.ndarray, np.ndarray]:
    y_true = _check_labels("y_true", y_true)
    other = np.asarray(other)
    if other.shape != y_true.shape:
        raise ValueError(f"`{name}` must have the shape of `y_true` {y_true.shape}. Received: {name}.shape={other.shape}")
    if len(y_true) == 0:
        raise ValueError("`y_true` must not be empty. Received: y_true=[]")
    return y_true, other


def accuracy(y_true, y_pred) -> float:
    r"""Share of correct predictions, :math:`\frac1N \sum_n [\hat y_n = y_n]` (``sklearn.metrics.accuracy_score``)."""
    y_true, y_pred = _check_pair(y_true, y_pred, "y_pred")
    return float(np.mean(y_true == _check_labels("y_pred", y_pred)))


def roc_auc(y_true, scores) -> float:
    r"""Area under the ROC curve as the Mann-Whitney statistic (``sklearn.metrics.roc_auc_score``).

    .. math::

        \mathrm{AUC} = \frac{1}{N_+ N_-} \sum_{i: y_i = 1} \sum_{j: y_j = 0}
        \big([s_i > s_j] + \tfrac12 [s_i = s_j]\big),

    computed from the average ranks of the scores (ties share their mean rank).
    """
    from scipy.stats import rankdata

    y_true, scores = _check_pair(y_true, scores, "scores")
    positives, negatives = int(y_true.sum()), int((1 - y_true).sum())
    if positives == 0 or negatives == 0:
        raise ValueError(f"`y_true` must contain both classes. Received: {positives} positives, {negatives} negatives")
    ranks = rankdata(np.asarray(scores, dtype=np.float64))
    return float((ranks[y_true == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


# --- what moves the prediction --------------------------------------------------------------------------------------

def word_contributions(model: MeanEmbedding, vocab: Vocabulary, text: str) -> list[tuple[str, float]]:
    r"""Each token of ``text`` with its exact share :math:`w^\top e_t / |s|` of the mean-pooled logit.

    The shares plus the bias :math:`b` sum to the model's logit :math:`z(s)`. Unknown words
    are marked ``"(<unk>)"`` (they all share the embedding of id 1); with ``ngrams=2`` the word
    pairs are listed after the words.
    """
    if not isinstance(model, MeanEmbedding) or isinstance(model, PriorMeanEmbedding):
        raise TypeError(f"`model` must be a MeanEmbedding (without a prior, whose term is not a word's). "
                        f"Received: model of type {type(model).__name__}")
    tokens = with_ngrams(tokenize(text), vocab.ngrams)
    ids = vocab.encode(text)
    if not ids:
        return []
    with torch.no_grad():
        shares = model.word_logits(torch.tensor([ids]))[0] / len(ids)
    return [(token if i != Vocabulary.UNK else f"{token} (<unk>)", float(s)) for token, i, s in zip(tokens, ids, shares)]


def occlusion(model: nn.Module, vocab: Vocabulary, text: str) -> list[tuple[str, float]]:
    r"""Each token of ``text`` with :math:`P(+ \mid s) - P(+ \mid s \setminus t)`, the drop when the word is removed.

    Positive: the word pushes towards *positive*. The shorter sentence is re-encoded (so with
    ``ngrams=2`` the word's pairs go too). A one-word sentence is compared with the empty
    sentence (all padding).
    """
    tokens = tokenize(text)
    if not tokens:
        return []
    rows = [vocab.encode_tokens(tokens)] + [vocab.encode_tokens(tokens[:i] + tokens[i + 1:]) for i in range(len(tokens))]
    batch = torch.zeros(len(rows), max(1, max(len(r) for r in rows)), dtype=torch.int64)
    for r, row in enumerate(rows):
        batch[r, : len(row)] = torch.tensor(row, dtype=torch.int64)
    p = predict_proba(model, batch)
    return [(token, float(p[0] - p[i + 1])) for i, token in enumerate(tokens)]


def cross_source_splits(sources, train_index, test_index) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """For each source: (training rows of the *other two* sources, test rows of this source), from the fixed split."""
    sources = np.asarray(sources)
    check_ndarray("train_index", np.asarray(train_index), 1)
    out = {}
    for held_out in SOURCES:
        out[held_out] = (np.asarray(train_index)[sources[train_index] != held_out],
                         np.asarray(test_index)[sources[test_index] == held_out])
    return out


# --- the chapter's runs ---------------------------------------------------------------------------------------------

#: The chapter's settings: model keyword arguments, then training keyword arguments.
MEAN = (dict(embedding_dim=16, dropout=0.5), dict(epochs=20, batch_size=32, learning_rate=1e-2))
CNN = (dict(embedding_dim=32, filters=32, kernel_sizes=(2, 3, 4), dropout=0.5),
       dict(epochs=10, batch_size=32, learning_rate=3e-3))


def source_accuracy(labels, proba, sources) -> dict[str, float]:
    """Accuracy of ``proba >= 0.5`` over all rows (``"all"``) and per source present in ``sources``."""
    labels = _check_labels("labels", labels)
    predicted = (np.asarray(proba) >= 0.5).astype(np.int64)
    sources = np.asarray(sources)
    out = {"all": accuracy(labels, predicted)}
    for source in SOURCES:
        rows = sources == source
        if rows.any():
            out[source] = accuracy(labels[rows], predicted[rows])
    return out


MODELS = ("bow", "vader", "bow_vader", "mean", "mean_vader", "cnn")
VADER_CUTOFF = 0.05   # VADER's documented rule: positive when the compound score is at least 0.05


def fit_models(data: Sentences, train_index, test_index, *, seed: int = 0, models=MODELS,
               val_fraction: float = 0.1, split_seed: int = 0) -> dict:
    r"""Fit each of ``models`` (names from :data:`MODELS`) on the rows ``train_index`` of ``data`` and predict ``test_index``.

    ``"bow"``: :func:`fit_bow_baseline` on all training rows (``C`` by CV with folds from ``seed``);
    ``"bow_vader"`` the same with ``vader=True``. ``"vader"``: no training, positive when
    :func:`vader_compound` :math:`c \ge` :data:`VADER_CUTOFF` (VADER's own rule), with
    :math:`P = \mathrm{clip}(\tfrac12 + (c - \text{VADER\_CUTOFF})/2, 0, 1)` for the AUC.
    ``"mean"``/``"mean_vader"``/``"cnn"``: a :class:`Vocabulary` of the fitting rows, :func:`build_model`
    with :data:`MEAN`/:data:`MEAN`/:data:`CNN`, :func:`train` with ``seed`` and early stopping on a
    stratified ``val_fraction`` of the training rows (drawn with ``split_seed``, the same for every
    model seed); ``"mean_vader"`` gets the VADER scores as its ``prior``.
    Returns ``{"labels", "sources", "vocab", name: {"proba", "accuracy", ...}}``.
    """
    seed = _check_seed(seed)
    if isinstance(models, str):
        raise TypeError(f"`models` must be a sequence of model names, not a str. Received: models={models!r}")
    for name in models:
        check_choice("models", name, MODELS)
    train_data, test_data = data.subset(train_index), data.subset(test_index)
    out = {"labels": test_data.labels, "sources": test_data.sources}
    for name in ("bow", "bow_vader"):
        if name in models:
            search = fit_bow_baseline(train_data.texts, train_data.labels, seed=seed, vader=name == "bow_vader")
            proba = search.predict_proba(test_data.texts)[:, 1]
            out[name] = {"proba": proba, "search": search, "C": search.best_params_["logisticregression__C"],
                         "accuracy": source_accuracy(test_data.labels, proba, test_data.sources)}
    if "vader" in models or "mean_vader" in models:
        train_prior, test_prior = vader_compound(train_data.texts), vader_compound(test_data.texts)
    if "vader" in models:
        proba = np.clip(0.5 + (test_prior - VADER_CUTOFF) / 2.0, 0.0, 1.0)   # P >= 0.5 exactly when c >= the cut-off
        out["vader"] = {"proba": proba, "accuracy": source_accuracy(test_data.labels, proba, test_data.sources)}
    neural = [name for name in models if name in ("mean", "mean_vader", "cnn")]
    if neural:
        fit, val = validation_split(train_data.labels, train_data.sources, val_fraction=val_fraction, seed=split_seed)
        vocab = Vocabulary.from_texts([train_data.texts[i] for i in fit])
        ids, test_ids = vocab.batch(train_data.texts), vocab.batch(test_data.texts)
        out["vocab"] = vocab
        for name in neural:
            model_kwargs, train_kwargs = CNN if name == "cnn" else MEAN
            model = build_model(name, len(vocab), **model_kwargs)
            if name == "mean_vader":
                history = train(model, ids[fit], train_data.labels[fit], seed=seed, prior=train_prior[fit],
                                validation_data=(ids[val], train_data.labels[val], train_prior[val]), **train_kwargs)
                proba = predict_proba(model, test_ids, prior=test_prior)
            else:
                history = train(model, ids[fit], train_data.labels[fit], seed=seed,
                                validation_data=(ids[val], train_data.labels[val]), **train_kwargs)
                proba = predict_proba(model, test_ids)
            out[name] = {"proba": proba, "model": model, "history": history,
                         "accuracy": source_accuracy(test_data.labels, proba, test_data.sources)}
    return out
