"""dlnotes.scratch.translation: BLEU equals sacrebleu's, ROUGE equals Google's rouge-score, summarisers pick sentences.

Both references run on the same tokens: sacrebleu with ``tokenize="none"`` (our tokens joined by
spaces; a missing reference is ``None``, sacrebleu's convention for a variable number), and
rouge-score's ``RougeScorer`` without stemming, whose tokenizer our ``rouge_tokenize`` copies.
The scores must agree to 1e-9 (both are exact rational arithmetic in float64).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sacrebleu
from hypothesis import given, strategies as st
from rouge_score import rouge_scorer

from dlnotes.scratch import translation as tr

WORDS = ["le", "la", "chat", "chien", "est", "sur", "un", "une", "table", "noir", "."]
tokens = st.lists(st.sampled_from(WORDS), min_size=0, max_size=9)
nonempty = st.lists(st.sampled_from(WORDS), min_size=1, max_size=9)
corpus = st.lists(st.tuples(tokens, st.lists(nonempty, min_size=1, max_size=3)), min_size=1, max_size=25)


def sacre(hypotheses, references):
    depth = max(len(r) for r in references)
    streams = [[" ".join(r[k]) if k < len(r) else None for r in references] for k in range(depth)]
    return sacrebleu.corpus_bleu([" ".join(h) for h in hypotheses], streams, tokenize="none")


@given(corpus)
def test_corpus_bleu_equals_sacrebleu(pairs):
    hypotheses, references = [h for h, _ in pairs], [r for _, r in pairs]
    ours, theirs = tr.corpus_bleu(hypotheses, references), sacre(hypotheses, references)
    assert ours["sys_len"] == theirs.sys_len and ours["ref_len"] == theirs.ref_len
    assert ours["bleu"] == pytest.approx(theirs.score, abs=1e-9)
    if ours["bleu"] > 0:
        assert ours["precisions"] == pytest.approx(theirs.precisions, abs=1e-9)
        assert ours["bp"] == pytest.approx(theirs.bp, abs=1e-12)


def test_bleu_by_hand():
    # hypothesis "le chat est noir" vs "le chat est sur la table": p1 = 3/4, p2 = 2/3, p3 = 1/2, p4: no match (smoothed).
    out = tr.corpus_bleu([["le", "chat", "est", "noir"]], [[["le", "chat", "est", "sur", "la", "table"]]])
    assert out["precisions"][:3] == pytest.approx([75.0, 200 / 3, 50.0])
    assert out["precisions"][3] == pytest.approx(100.0 / (2 * 1))  # first zero order: 100 / (2 * total_4)
    assert out["bp"] == pytest.approx(math.exp(1 - 6 / 4))
    assert tr.corpus_bleu([["a", "b", "c", "d"]], [[["a", "b", "c", "d"]]])["bleu"] == pytest.approx(100.0)


def test_bleu_clips_repeated_words_and_takes_the_best_reference():
    # "the the the the" against "the cat": only one "the" counts (Papineni et al.'s example).
    assert tr.corpus_bleu([["the"] * 4], [[["the", "cat"]]], max_order=1)["precisions"] == [25.0]
    # a second reference that contains the hypothesis raises the score to 100
    refs = [[["a", "cat", "sat", "down"], ["the", "cat", "sat", "here"]]]
    assert tr.corpus_bleu([["the", "cat", "sat", "here"]], refs)["bleu"] == pytest.approx(100.0)


@given(corpus)
def test_bleu_is_between_0_and_100_and_perfect_on_a_copy(pairs):
    references = [r for _, r in pairs]
    score = tr.corpus_bleu([h for h, _ in pairs], references)["bleu"]
    assert 0.0 <= score <= 100.0 + 1e-9
    assert tr.corpus_bleu([r[0] for r in references], references)["bleu"] == pytest.approx(100.0) or any(
        len(r[0]) < 4 for r in references)  # under 4 tokens the 4-gram count is 0 everywhere


TEXTS = [
    ("The cat sat on the mat, quite happily today.", "A cat was sitting on the mat today!"),
    ("Gradient descent follows the negative gradient.", "We follow the gradient downhill, step by step."),
    ("Nothing in common", "entirely different words here"),
    ("Numbers 3 and 42 count as tokens too.", "3 and 42 are tokens"),
]


@pytest.mark.parametrize("candidate, reference", TEXTS)
def test_rouge_equals_rouge_score(candidate, reference):
    theirs = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False).score(reference, candidate)
    c, r = tr.rouge_tokenize(candidate), tr.rouge_tokenize(reference)
    ours = {"rouge1": tr.rouge_n(c, r, 1), "rouge2": tr.rouge_n(c, r, 2), "rougeL": tr.rouge_l(c, r)}
    for key, score in theirs.items():
        for field in ("precision", "recall", "fmeasure"):
            assert ours[key][field] == pytest.approx(getattr(score, field), abs=1e-12), (key, field)


@given(st.lists(st.sampled_from(WORDS[:-1]), min_size=1, max_size=12), st.lists(st.sampled_from(WORDS[:-1]), min_size=1, max_size=12))
def test_rouge_matches_rouge_score_on_random_texts(a, b):
    theirs = rouge_scorer.RougeScorer(["rouge2", "rougeL"]).score(" ".join(b), " ".join(a))
    assert tr.rouge_n(a, b, 2)["fmeasure"] == pytest.approx(theirs["rouge2"].fmeasure, abs=1e-12)
    assert tr.rouge_l(a, b)["fmeasure"] == pytest.approx(theirs["rougeL"].fmeasure, abs=1e-12)


@given(tokens, tokens)
def test_lcs_is_symmetric_and_bounded(a, b):
    n = tr.lcs_length(a, b)
    assert n == tr.lcs_length(b, a) and 0 <= n <= min(len(a), len(b))
    assert tr.lcs_length(a, a) == len(a)


def test_split_sentences():
    text = ("First sentence is here. Second one follows now! Is it the third?\n\n- A list item with words\n- ok\n"
            "1. Numbered items end sentences too\ne.g. lower case does not.")
    assert tr.split_sentences(text) == ["First sentence is here.", "Second one follows now!", "Is it the third?",
                                        "A list item with words", "Numbered items end sentences too e.g. lower case does not."]
    assert tr.split_sentences("Short one. Is it here?", min_words=3) == ["Is it here?"]


SENTENCES = ["Neural networks learn weights from data by gradient descent.",
             "The weather today is sunny and warm in the city.",
             "Gradient descent updates weights against the gradient of the loss.",
             "Backpropagation computes the gradient of the loss for every weight.",
             "My cat prefers fish to chicken."]


def test_summarisers_pick_the_central_sentences_in_document_order():
    assert tr.lead_k(SENTENCES, 2) == SENTENCES[:2]
    for summarise in (tr.centroid_summary, tr.textrank_summary):
        chosen = summarise(SENTENCES, 2)
        assert len(chosen) == 2 and all(s in SENTENCES for s in chosen)
        assert [SENTENCES.index(s) for s in chosen] == sorted(SENTENCES.index(s) for s in chosen)
        assert SENTENCES[1] not in chosen and SENTENCES[4] not in chosen, chosen
    assert tr.centroid_summary(SENTENCES, 10) == SENTENCES  # k larger than the document: everything


def test_tfidf_rows_are_unit_vectors_and_match_sklearn():
    from sklearn.feature_extraction.text import TfidfVectorizer

    ours = tr.tfidf_matrix(SENTENCES)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0)
    theirs = TfidfVectorizer(token_pattern=r"[a-z0-9]+", lowercase=True, smooth_idf=True).fit_transform(SENTENCES)
    assert np.abs(ours - theirs.toarray()).max() < 1e-12


def test_textrank_scores_equal_networkx_pagerank():
    import networkx as nx

    w = tr.tfidf_matrix(SENTENCES)
    sim = w @ w.T
    graph = nx.Graph()
    graph.add_nodes_from(range(len(SENTENCES)))
    graph.add_weighted_edges_from((i, j, sim[i, j]) for i in range(len(SENTENCES)) for j in range(i + 1, len(SENTENCES))
                                  if sim[i, j] > 0)
    theirs = nx.pagerank(graph, alpha=0.85, weight="weight", tol=1e-14, max_iter=1000)
    ours = tr.textrank_scores(SENTENCES)
    assert np.abs(ours - np.array([theirs[i] for i in range(len(SENTENCES))])).max() < 1e-10
    assert ours.sum() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("call, match", [
    (lambda: tr.corpus_bleu(["le chat"], [[["le", "chat"]]]), r"`hypotheses\[0\]` must be a list of token strings"),
    (lambda: tr.corpus_bleu([["a"]], []), r"`references` must hold one entry per hypothesis"),
    (lambda: tr.corpus_bleu([["a"]], [[]]), r"`references\[0\]` must be a non-empty list"),
    (lambda: tr.corpus_bleu([["a"]], [[["a"]]], max_order=0), r"`max_order` must be a positive integer. Received: max_order=0"),
    (lambda: tr.ngrams(["a"], 0), r"`n` must be a positive integer"),
    (lambda: tr.rouge_tokenize(3), r"`text` must be a string. Received: text=3"),
    (lambda: tr.lead_k([], 2), r"`sentences` must be a non-empty list of strings"),
    (lambda: tr.centroid_summary(SENTENCES, 0), r"`k` must be a positive integer. Received: k=0"),
    (lambda: tr.textrank_summary(SENTENCES, 2, damping=1.0), r"`damping` must be in \(0.0, 1.0\). Received: damping=1.0"),
])
def test_bad_arguments_are_named(call, match):
    with pytest.raises((TypeError, ValueError), match=match):
        call()
