"""dlnotes.pipelines.translation: the split holds out whole sentences, the models attend and learn, decoding is right.

The data tests read the mirrored Tatoeba file; the model tests use a toy task (reverse a
sequence of symbols), which an attention model learns to near-perfect BLEU in a few seconds.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlnotes.pipelines import translation as mt


@pytest.fixture(scope="module")
def split():
    return mt.split_pairs(mt.load_pairs(6000), n_test=300, n_val=100)


def test_load_pairs_reads_the_tab_separated_file():
    pairs = mt.load_pairs(3)
    assert pairs == [("Go.", "Va !"), ("Hi.", "Salut !"), ("Run!", "Cours\u202f!")]


def test_tokenize():
    assert mt.tokenize("Cours\u202f!") == ["cours", "!"]
    assert mt.tokenize("J\u2019ai «faim», Tom.") == ["j'ai", "«", "faim", "»", ",", "tom", "."]


def test_split_holds_out_whole_english_sentences_with_all_their_translations(split):
    pairs = mt.load_pairs(6000)
    train_sources = {tuple(s) for s, _ in split.train}
    test_sources = {tuple(s) for s in split.test_sources}
    val_sources = {tuple(s) for s in split.val_sources}
    assert len(split.test_sources) == 300 and len(split.val_sources) == 100
    assert not (train_sources & test_sources) and not (train_sources & val_sources) and not (val_sources & test_sources)
    n_refs = sum(len(r) for r in split.test_references) + sum(len(r) for r in split.val_references)
    assert len(split.train) + n_refs == len(pairs)  # every pair is used exactly once
    by_source = {}
    for en, fr in pairs:
        by_source.setdefault(tuple(mt.tokenize(en)), []).append(mt.tokenize(fr))
    for source, refs in zip(split.test_sources, split.test_references):
        assert refs == by_source[tuple(source)]


def test_split_depends_only_on_its_seed():
    pairs = mt.load_pairs(2000)
    a, b = mt.split_pairs(pairs, n_test=50, n_val=20), mt.split_pairs(pairs, n_test=50, n_val=20)
    assert a.test_sources == b.test_sources
    assert mt.split_pairs(pairs, n_test=50, n_val=20, seed=1).test_sources != a.test_sources


def test_vocabulary_round_trip_and_unknown_words():
    vocab = mt.Vocabulary([["le", "chat"], ["le", "chien"]], min_count=1)
    assert vocab.itos[:4] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    ids = vocab.encode(["le", "chat", "zèbre"], eos=True)
    assert ids[-1] == mt.EOS and ids[2] == mt.UNK
    assert vocab.decode(ids + [vocab.stoi["le"]]) == ["le", "chat", "<unk>"]  # stops at <eos>
    assert "chat" not in mt.Vocabulary([["le", "chat"], ["le"]], min_count=2).stoi


@pytest.mark.parametrize("attention", [False, True])
def test_shapes_and_attention_weights(attention):
    torch.manual_seed(0)
    model = mt.Seq2Seq(20, 30, embedding=8, hidden=16, attention=attention)
    src = torch.tensor([[5, 6, 7, 0, 0], [5, 6, 7, 8, 9]])  # the first sentence has 2 pads
    logits, weights = model(src, torch.tensor([[2, 4, 5], [2, 6, 7]]))
    assert logits.shape == (2, 3, 30) and weights.shape == (2, 3, 5)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 3))
    assert torch.all(weights[0, :, 3:] == 0)  # pads get no attention
    if not attention:  # the fixed context is the last real state
        assert torch.all(weights[0, :, 2] == 1) and torch.all(weights[1, :, 4] == 1)


def test_padding_does_not_change_the_encoding():
    torch.manual_seed(0)
    model = mt.Seq2Seq(20, 30, embedding=8, hidden=16)
    short_states, short_last, _ = model.encode(torch.tensor([[5, 6, 7]]))
    padded_states, padded_last, _ = model.encode(torch.tensor([[5, 6, 7, 0, 0]]))
    assert torch.allclose(short_last, padded_last, atol=1e-7)
    assert torch.allclose(short_states, padded_states[:, :3], atol=1e-7)


SYMBOLS = [f"s{i}" for i in range(8)]


def reverse_task(n, seed):
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n):
        src = [SYMBOLS[i] for i in rng.integers(0, len(SYMBOLS), size=rng.integers(3, 7))]
        pairs.append((src, src[::-1]))
    return pairs


@pytest.fixture(scope="module")
def toy():
    train_pairs, test_pairs = reverse_task(1500, 0), reverse_task(100, 1)
    vocab = mt.Vocabulary([s for s, _ in train_pairs], min_count=1)
    model = mt.Seq2Seq(len(vocab), len(vocab), embedding=16, hidden=64, attention=True)
    losses = mt.train(model, train_pairs, vocab, vocab, epochs=12, batch_size=32, learning_rate=1e-2, seed=0)
    return model, vocab, test_pairs, losses


def test_attention_model_learns_to_reverse(toy):
    model, vocab, test_pairs, losses = toy
    assert losses[-1] < 0.2 * losses[0]
    hyps = mt.greedy_decode(model, [s for s, _ in test_pairs], vocab, vocab, max_len=10)
    assert mt.bleu_of(hyps, [[t] for _, t in test_pairs]) > 80


def test_beam_of_one_without_length_penalty_is_greedy(toy):
    model, vocab, test_pairs, _ = toy
    sources = [s for s, _ in test_pairs[:20]]
    greedy = mt.greedy_decode(model, sources, vocab, vocab, max_len=10)
    beams = [mt.beam_search(model, s, vocab, vocab, beam=1, alpha=0.0, max_len=10) for s in sources]
    assert beams == greedy
    assert mt.translate_all(model, sources, vocab, vocab, beam=3, max_len=10) == [
        mt.beam_search(model, s, vocab, vocab, beam=3, max_len=10) for s in sources]


def test_attention_map_rows_are_distributions(toy):
    model, vocab, test_pairs, _ = toy
    source, target = test_pairs[0]
    weights = mt.attention_map(model, source, target, vocab, vocab)
    assert weights.shape == (len(target) + 1, len(source))
    assert np.allclose(weights.sum(axis=1), 1.0, atol=1e-6)
    # reversing: the first output word attends most to the last input word
    assert weights[0].argmax() == len(source) - 1


def test_training_is_reproducible_with_a_seed():
    pairs = reverse_task(200, 0)
    vocab = mt.Vocabulary([s for s, _ in pairs], min_count=1)
    runs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = mt.Seq2Seq(len(vocab), len(vocab), embedding=8, hidden=16)
        runs.append(mt.train(model, pairs, vocab, vocab, epochs=2, batch_size=32, seed=5))
    assert runs[0] == runs[1]


def test_copy_baseline_scores_perfectly_only_on_copies():
    sources = [["tom", "."], ["marie", "!"]]
    assert mt.bleu_of(mt.copy_baseline(sources), [[["tom", "."]], [["marie", "!"]]]) == pytest.approx(
        mt.bleu_of([["tom", "."], ["marie", "!"]], [[["tom", "."]], [["marie", "!"]]]))
    assert mt.copy_baseline(sources) == sources and mt.copy_baseline(sources)[0] is not sources[0]


def test_book_documents_take_the_summary_as_reference():
    from tests.notebooks import BOOK

    documents = mt.book_documents(BOOK)
    names = [d.name for d in documents]
    assert "math/backprop" in names and "applications/translation" not in names
    for doc in documents:
        assert doc.sentences and doc.reference
        assert not any("```" in s or "{glue" in s for s in doc.sentences)


@pytest.mark.parametrize("call, match", [
    (lambda: mt.load_pairs(0), r"`n_pairs` must be a positive integer. Received: n_pairs=0"),
    (lambda: mt.load_pairs(10**7), r"`n_pairs` must be at most 167130. Received: n_pairs=10000000"),
    (lambda: mt.tokenize(None), r"`text` must be a string. Received: text=None"),
    (lambda: mt.split_pairs([("a", "b")], n_test=1, n_val=1), r"`n_test` \+ `n_val` must leave English sentences"),
    (lambda: mt.Seq2Seq(0, 5), r"`src_vocab` must be a positive integer. Received: src_vocab=0"),
    (lambda: mt.Seq2Seq(5, 5, attention="yes"), r"`attention` must be True or False. Received: attention='yes'"),
    (lambda: mt.train("model", [], None, None), r"`model` must be a Seq2Seq. Received: model of type str"),
    (lambda: mt.train(mt.Seq2Seq(5, 5), [], None, None), r"`pairs` must hold at least one"),
    (lambda: mt.train(mt.Seq2Seq(5, 5), [], None, None, learning_rate=-1.0), r"`learning_rate` must be in"),
    (lambda: mt.translate_all(mt.Seq2Seq(5, 5), [], None, None, beam=0), r"`beam` must be a positive integer"),
    (lambda: mt.attention_map(mt.Seq2Seq(5, 5, attention=False), ["a"], ["b"], None, None), r"`model` has no attention"),
    (lambda: mt.book_documents("/nonexistent/book"), r"`book_dir` must be the book/ folder"),
])
def test_bad_arguments_are_named(call, match):
    with pytest.raises((TypeError, ValueError), match=match):
        call()


def test_chapter_thresholds_are_the_measured_ones():
    """The notebook's checked thresholds are those of scripts/thresholds/translation.py, set below the worst seed."""
    import importlib.util
    import json
    import re

    from tests.notebooks import ROOT

    spec = importlib.util.spec_from_file_location("thr", ROOT / "scripts/thresholds/translation.py")
    thresholds = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(thresholds)
    cells = json.loads((ROOT / "book/applications/translation.ipynb").read_text(encoding="utf-8"))["cells"]
    source = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    for constant, metric in (("ATTENTION_BLEU_MIN", "attention_bleu"), ("PLAIN_BLEU_MIN", "plain_bleu"),
                             ("ATTENTION_GAIN_MIN", "attention_gain")):
        value = float(re.search(rf"^{constant} = ([\d.]+)$", source, re.M).group(1))
        assert value == thresholds.THRESHOLDS[metric][0], constant
    table = (ROOT / "benchmarks/translation_thresholds.md").read_text(encoding="utf-8")
    for metric, (threshold, _) in thresholds.THRESHOLDS.items():
        worst = float(re.search(rf"^\| translation \| {metric} \| 5 \| ([\d.]+) \|", table, re.M).group(1))
        assert threshold < worst, f"{metric}: threshold {threshold} is not below the worst seed {worst}"


def test_chapter_seed_ranges_are_the_measured_ones():
    import json
    import re

    from tests.notebooks import ROOT

    cells = json.loads((ROOT / "book/applications/translation.ipynb").read_text(encoding="utf-8"))["cells"]
    source = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    import ast

    ranges = ast.literal_eval(re.search(r"^SEED_RANGE = (\{.*\})$", source, re.M).group(1))
    table = (ROOT / "benchmarks/translation_thresholds.md").read_text(encoding="utf-8")
    for metric, (low, high) in ranges.items():
        row = re.search(rf"^\| translation \| {metric} \| 5 \| ([\d.]+) \| [\d.]+ \| ([\d.]+) \|", table, re.M)
        assert (low, high) == (float(row.group(1)), float(row.group(2))), metric
