r"""The metrics of machine translation and summarisation, and extractive summarisers, in plain Python.

Taught in: *Machine translation and summarisation* (``book/applications/translation.ipynb``).
Every function here works on *tokens* (lists of strings) that the caller has already split, so
that the numbers depend on the metric and not on a tokenizer; the tests compare them with
``sacrebleu`` (``tokenize="none"``) and Google's ``rouge-score`` on the same text.

**BLEU** (Papineni et al., 2002), corpus level. For n-gram orders :math:`n = 1..N` (:math:`N = 4`),
the *clipped* precision counts each hypothesis n-gram at most as often as it occurs in any one
reference,

.. math::

    p_n = \frac{\sum_s \sum_{g \in \text{ngrams}_n(h_s)} \min\big(c_{h_s}(g), \max_r c_{r}(g)\big)}
               {\sum_s \sum_{g \in \text{ngrams}_n(h_s)} c_{h_s}(g)},

and a brevity penalty punishes a corpus of hypotheses shorter (length :math:`c`) than its
references (length :math:`r`, for each sentence the reference length closest to the hypothesis'):

.. math::

    \text{BP} = \min\big(1, e^{1 - r/c}\big), \qquad
    \text{BLEU} = 100 \cdot \text{BP} \cdot \exp\Big(\frac{1}{N} \sum_{n=1}^{N} \log p_n\Big).

An order with no match at all would make the score 0; like sacrebleu's default (``"exp"``
smoothing) we then use :math:`p_n = 100 / (2^k \cdot \text{total}_n)` for the :math:`k`-th such order.

**ROUGE** (Lin, 2004) for summaries: ROUGE-n is the F-measure of the n-gram overlap between a
candidate and a reference summary; ROUGE-L replaces n-grams by the longest common subsequence.

**Extractive summarisers** pick whole sentences of a document: :func:`lead_k` (the first
:math:`k`, the classic baseline), :func:`centroid_summary` (the :math:`k` sentences whose TF-IDF
vectors are closest to the document's centroid, Radev et al. 2004) and :func:`textrank_summary`
(PageRank over the sentence-similarity graph, Mihalcea & Tarau 2004).
"""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np

from dlnotes._checks import check_positive_int, check_real

__all__ = ["ngrams", "corpus_bleu", "rouge_tokenize", "rouge_n", "rouge_l", "lcs_length",
           "split_sentences", "lead_k", "tfidf_matrix", "centroid_summary", "textrank_scores", "textrank_summary"]


def _check_tokens(name: str, tokens) -> list[str]:
    if isinstance(tokens, str) or not isinstance(tokens, (list, tuple)) or not all(isinstance(t, str) for t in tokens):
        raise TypeError(f"`{name}` must be a list of token strings (split the text first). Received: {name}={tokens!r:.80}")
    return list(tokens)


def ngrams(tokens, n: int) -> Counter:
    """The multiset of the ``n``-grams of ``tokens``: ``Counter({("le", "chat"): 1, ...})``."""
    tokens = _check_tokens("tokens", tokens)
    n = check_positive_int("n", n)
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _closest_length(hyp_len: int, ref_lens: list[int]) -> int:
    """The reference length closest to the hypothesis length; a tie goes to the shorter."""
    return min(ref_lens, key=lambda r: (abs(r - hyp_len), r))


def corpus_bleu(hypotheses, references, *, max_order: int = 4) -> dict:
    """Corpus BLEU of tokenized ``hypotheses`` against one or more tokenized references each.

    ``hypotheses``: a list of S token lists. ``references``: a list of S lists, each holding one
    or more token lists (the references of that sentence). Returns ``{"bleu": 0..100,
    "precisions": [p_1..p_N] in %, "bp": brevity penalty, "sys_len": c, "ref_len": r}``.
    """
    if not isinstance(hypotheses, (list, tuple)) or not isinstance(references, (list, tuple)):
        raise TypeError("`hypotheses` and `references` must be lists. "
                        f"Received: {type(hypotheses).__name__} and {type(references).__name__}")
    if len(hypotheses) != len(references) or not hypotheses:
        raise ValueError("`references` must hold one entry per hypothesis, and there must be at least one. "
                         f"Received: len(hypotheses)={len(hypotheses)}, len(references)={len(references)}")
    max_order = check_positive_int("max_order", max_order)
    correct, total = [0] * max_order, [0] * max_order
    sys_len = ref_len = 0
    for s, (hyp, refs) in enumerate(zip(hypotheses, references)):
        hyp = _check_tokens(f"hypotheses[{s}]", hyp)
        if not isinstance(refs, (list, tuple)) or not refs:
            raise ValueError(f"`references[{s}]` must be a non-empty list of token lists. Received: {refs!r:.80}")
        refs = [_check_tokens(f"references[{s}]", r) for r in refs]
        sys_len += len(hyp)
        ref_len += _closest_length(len(hyp), [len(r) for r in refs])
        for n in range(1, max_order + 1):
            hyp_counts = ngrams(hyp, n)
            best = Counter()
            for r in refs:
                best |= ngrams(r, n)  # the elementwise max over references
            correct[n - 1] += sum(min(c, best[g]) for g, c in hyp_counts.items())
            total[n - 1] += sum(hyp_counts.values())
    precisions, smooth = [], 1.0
    for n in range(max_order):
        if total[n] == 0:
            precisions.append(0.0)
        elif correct[n] == 0:
            smooth *= 2
            precisions.append(100.0 / (smooth * total[n]))
        else:
            precisions.append(100.0 * correct[n] / total[n])
    if sys_len == 0 or min(precisions) == 0.0:
        return {"bleu": 0.0, "precisions": precisions, "bp": 0.0, "sys_len": sys_len, "ref_len": ref_len}
    bp = 1.0 if sys_len > ref_len else math.exp(1.0 - ref_len / sys_len)
    bleu = bp * math.exp(sum(math.log(p) for p in precisions) / max_order)
    return {"bleu": bleu, "precisions": precisions, "bp": bp, "sys_len": sys_len, "ref_len": ref_len}


def rouge_tokenize(text: str) -> list[str]:
    """ROUGE's tokens: lower-case, every run of characters other than ``a-z0-9`` is a separator
    (the rule of ``rouge_score.tokenize`` without stemming)."""
    if not isinstance(text, str):
        raise TypeError(f"`text` must be a string. Received: text={text!r:.80}")
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).split()


def _f_measure(overlap: int, candidate: int, reference: int) -> dict:
    precision = overlap / candidate if candidate else 0.0
    recall = overlap / reference if reference else 0.0
    f = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "fmeasure": f}


def rouge_n(candidate, reference, n: int = 1) -> dict:
    """ROUGE-n: precision, recall and F1 of the clipped n-gram overlap of two token lists."""
    cand, ref = ngrams(candidate, n), ngrams(reference, n)
    overlap = sum((cand & ref).values())
    return _f_measure(overlap, sum(cand.values()), sum(ref.values()))


def lcs_length(a, b) -> int:
    """Length of the longest common subsequence of two token lists (dynamic programming, O(|a||b|))."""
    a, b = _check_tokens("a", a), _check_tokens("b", b)
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, 1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(candidate, reference) -> dict:
    """ROUGE-L: precision LCS/|candidate|, recall LCS/|reference| and their F1."""
    candidate, reference = _check_tokens("candidate", candidate), _check_tokens("reference", reference)
    return _f_measure(lcs_length(candidate, reference), len(candidate), len(reference))


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'`*])")


def split_sentences(text: str, *, min_words: int = 4) -> list[str]:
    """Sentences of ``text``: split after ``.``/``!``/``?`` followed by a space and a capital;
    paragraphs and list items also end a sentence; fragments under ``min_words`` words are dropped."""
    if not isinstance(text, str):
        raise TypeError(f"`text` must be a string. Received: text={text!r:.80}")
    min_words = check_positive_int("min_words", min_words)
    sentences = []
    for block in re.split(r"\n\s*\n|\n(?=\s*(?:[-*+]|\d+\.) )", "\n" + text):
        block = re.sub(r"^\s*(?:[-*+]|\d+\.) ", "", block)  # a list item's marker
        block = " ".join(block.split())
        sentences += [s.strip() for s in _SENTENCE_END.split(block) if len(s.split()) >= min_words]
    return sentences


def _check_k(k, sentences) -> int:
    k = check_positive_int("k", k)
    if not isinstance(sentences, (list, tuple)) or not sentences or not all(isinstance(s, str) for s in sentences):
        raise ValueError(f"`sentences` must be a non-empty list of strings. Received: sentences={sentences!r:.80}")
    return min(k, len(sentences))


def lead_k(sentences, k: int = 3) -> list[str]:
    """The baseline: the first ``k`` sentences."""
    return list(sentences[:_check_k(k, sentences)])


def tfidf_matrix(sentences) -> np.ndarray:
    r"""Rows of L2-normalised TF-IDF vectors, one per sentence (sentences are the "documents"):
    :math:`w_{sj} = \text{tf}_{sj} \cdot \big(1 + \log\frac{1 + S}{1 + \text{df}_j}\big)`, shape ``(S, V)``."""
    tokens = [rouge_tokenize(s) for s in sentences]
    vocab = {w: j for j, w in enumerate(sorted({w for t in tokens for w in t}))}
    tf = np.zeros((len(tokens), max(len(vocab), 1)))
    for s, words in enumerate(tokens):
        for w in words:
            tf[s, vocab[w]] += 1
    df = (tf > 0).sum(axis=0)
    weights = tf * (1.0 + np.log((1 + len(tokens)) / (1 + df)))
    norms = np.linalg.norm(weights, axis=1, keepdims=True)
    return weights / np.where(norms > 0, norms, 1.0)


def _in_document_order(sentences, scores, k: int) -> list[str]:
    chosen = sorted(np.argsort(-np.asarray(scores), kind="stable")[:k])
    return [sentences[i] for i in chosen]


def centroid_summary(sentences, k: int = 3) -> list[str]:
    r"""The ``k`` sentences with the highest cosine similarity :math:`\hat w_s \cdot \bar w / \lVert\bar w\rVert`
    to the centroid :math:`\bar w` of all TF-IDF rows, returned in document order."""
    k = _check_k(k, sentences)
    w = tfidf_matrix(sentences)
    centroid = w.mean(axis=0)
    return _in_document_order(sentences, w @ centroid / (np.linalg.norm(centroid) or 1.0), k)


def textrank_scores(sentences, *, damping: float = 0.85, iterations: int = 200) -> np.ndarray:
    r"""TextRank: the PageRank vector :math:`r = (1 - d)/S + d\, P^\top r` of the graph whose edge
    weights are the cosine similarities of the sentences' TF-IDF rows (no self-loops; :math:`P` is
    row-normalised, a sentence with no neighbour links to all), by power iteration; shape ``(S,)``."""
    _check_k(1, sentences)
    damping = check_real("damping", damping, 0.0, 1.0, low_open=True, high_open=True)
    iterations = check_positive_int("iterations", iterations)
    w = tfidf_matrix(sentences)
    sim = w @ w.T
    np.fill_diagonal(sim, 0.0)
    rows = sim.sum(axis=1, keepdims=True)
    transition = np.where(rows > 0, sim / np.where(rows > 0, rows, 1.0), 1.0 / len(sentences))
    rank = np.full(len(sentences), 1.0 / len(sentences))
    for _ in range(iterations):
        rank = (1 - damping) / len(sentences) + damping * transition.T @ rank
    return rank


def textrank_summary(sentences, k: int = 3, *, damping: float = 0.85) -> list[str]:
    """The ``k`` sentences with the highest :func:`textrank_scores`, in document order (Mihalcea & Tarau, 2004)."""
    k = _check_k(k, sentences)
    return _in_document_order(sentences, textrank_scores(sentences, damping=damping), k)
