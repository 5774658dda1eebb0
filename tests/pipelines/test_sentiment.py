"""dlnotes.pipelines.sentiment: the data parse right, the split is fixed, the metrics match scikit-learn.

Metrics are compared with ``sklearn.metrics`` on the same predictions (to 1e-12); the
tokeniser and vocabulary are deterministic and map unseen words to the unknown id; the split
is stratified, disjoint, complete and depends only on its own seed; the models are
reproducible with a seed and learn a separable toy task; bad arguments raise errors that name
them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from sklearn import metrics

from dlnotes.pipelines import sentiment

# A toy task: sentences of filler words with one sentiment word; the label is the sentiment word's.
POSITIVE, NEGATIVE, FILLER = ["good", "great", "love"], ["bad", "awful", "hate"], ["the", "food", "was", "it", "a", "phone"]


def _toy(n=240, seed=0):
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        label = i % 2
        words = list(rng.choice(FILLER, size=rng.integers(2, 6)))
        words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(POSITIVE if label else NEGATIVE)))
        texts.append(" ".join(words))
        labels.append(label)
    return texts, np.array(labels)


@pytest.fixture(scope="module")
def data():
    return sentiment.load_sentences()


# --- data -----------------------------------------------------------------------------------------------------------

def test_parse_splits_on_newline_only_and_keeps_quotes():
    text = 'He said "no\x85 way"\t0\nGreat\tphone!\t1\r\n\n'
    sentences, labels = sentiment.parse_labelled(text)
    assert sentences == ['He said "no\x85 way"', "Great\tphone!"]
    assert labels.tolist() == [0, 1]


@pytest.mark.parametrize("bad", ["no label here\n", "sentence\t2\n", "\t1\n"])
def test_parse_rejects_malformed_lines(bad):
    with pytest.raises(ValueError, match="line 1 is not"):
        sentiment.parse_labelled(bad)


def test_the_three_files_have_1000_balanced_rows_each(data):
    assert len(data) == 3000
    for source in sentiment.SOURCES:
        rows = data.sources == source
        assert rows.sum() == 1000
        assert data.labels[rows].sum() == 500
    assert sum("\x85" in t for t in data.texts) == 2        # kept inside their sentences, as the MANIFEST says


def test_load_rejects_unknown_sources():
    with pytest.raises(ValueError, match="sources"):
        sentiment.load_sentences(["twitter"])
    with pytest.raises(ValueError, match="sources"):
        sentiment.load_sentences("imdb")


def test_split_is_stratified_disjoint_complete_and_fixed(data):
    train, test = sentiment.stratified_split(data.labels, data.sources, test_fraction=0.2, seed=0)
    assert len(np.intersect1d(train, test)) == 0
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(3000))
    for source in sentiment.SOURCES:
        for label in (0, 1):
            assert ((data.sources[test] == source) & (data.labels[test] == label)).sum() == 100
    again, _ = sentiment.stratified_split(data.labels, data.sources, test_fraction=0.2, seed=0)
    other, _ = sentiment.stratified_split(data.labels, data.sources, test_fraction=0.2, seed=1)
    assert np.array_equal(train, again) and not np.array_equal(train, other)


def test_split_argument_errors():
    with pytest.raises(ValueError, match="test_fraction"):
        sentiment.stratified_split([0, 1], ["a", "a"], test_fraction=1.0)
    with pytest.raises(ValueError, match="groups"):
        sentiment.stratified_split([0, 1], ["a"])
    with pytest.raises(ValueError, match="labels"):
        sentiment.stratified_split([0, 2], ["a", "a"])
    with pytest.raises(TypeError, match="seed"):
        sentiment.stratified_split([0, 1], ["a", "a"], seed=0.5)


def test_cross_source_rows_leave_the_test_source_out(data):
    train, test = sentiment.stratified_split(data.labels, data.sources, seed=0)
    for held_out, (rows, test_rows) in sentiment.cross_source_splits(data.sources, train, test).items():
        assert held_out not in set(data.sources[rows]) and set(data.sources[test_rows]) == {held_out}
        assert len(rows) == 1600 and len(test_rows) == 200 and len(np.intersect1d(rows, test)) == 0


# --- tokens ---------------------------------------------------------------------------------------------------------

def test_tokenize():
    assert sentiment.tokenize("Great phone, didn't BREAK!") == ["great", "phone", "didn't", "break", "!"]
    assert sentiment.tokenize("...") == []
    with pytest.raises(TypeError, match="text"):
        sentiment.tokenize(3)


def test_vocabulary_is_deterministic_with_pad_and_unknown():
    texts = ["b a a", "c b a", "d"]
    vocab = sentiment.Vocabulary.from_texts(texts)
    assert vocab.words == ["<pad>", "<unk>", "a", "b", "c", "d"]    # by count, then alphabetically
    assert sentiment.Vocabulary.from_texts(list(reversed(texts))).words == vocab.words
    assert vocab.encode("a zebra d") == [2, 1, 5]
    assert vocab.decode([2, 1, 0, 0]) == ["a", "<unk>"]
    assert sentiment.Vocabulary.from_texts(texts, min_count=2).words == ["<pad>", "<unk>", "a", "b"]


def test_vocabulary_batch_pads_right_with_zeros():
    vocab = sentiment.Vocabulary.from_texts(["a b c", "a"])
    ids = vocab.batch(["a b c", "a", "", "q"])
    assert ids.dtype == torch.int64 and tuple(ids.shape) == (4, 3)
    assert ids.tolist() == [[2, 3, 4], [2, 0, 0], [0, 0, 0], [1, 0, 0]]
    assert tuple(vocab.batch(["a b c"], max_len=2).shape) == (1, 2)
    with pytest.raises(ValueError, match="max_len"):
        vocab.batch(["a"], max_len=0)
    with pytest.raises(TypeError, match="texts"):
        vocab.batch("a b")


def test_bigram_vocabulary():
    vocab = sentiment.Vocabulary.from_texts(["not good"], ngrams=2)
    assert vocab.encode("not good") == [vocab.index["not"], vocab.index["good"], vocab.index["not good"]]
    with pytest.raises(ValueError, match="ngrams"):
        sentiment.Vocabulary.from_texts(["a"], ngrams=3)


# --- metrics against scikit-learn -----------------------------------------------------------------------------------

@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1), st.integers(0, 6)), min_size=2, max_size=60))
def test_metrics_match_sklearn(rows):
    y, y_pred, score = (np.array(c) for c in zip(*rows))
    assert sentiment.accuracy(y, y_pred) == pytest.approx(metrics.accuracy_score(y, y_pred), abs=1e-12)
    if 0 < y.sum() < len(y):
        scores = score / 6.0                                            # few distinct values: many ties
        assert sentiment.roc_auc(y, scores) == pytest.approx(metrics.roc_auc_score(y, scores), abs=1e-12)


def test_metrics_argument_errors():
    with pytest.raises(ValueError, match="y_pred"):
        sentiment.accuracy([0, 1], [1])
    with pytest.raises(ValueError, match="both classes"):
        sentiment.roc_auc([1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match="y_true"):
        sentiment.accuracy([], [])


def test_source_accuracy_per_source():
    out = sentiment.source_accuracy([1, 0, 1, 1], [0.9, 0.6, 0.1, 0.5], ["imdb", "imdb", "yelp", "yelp"])
    assert out == {"all": 0.5, "imdb": 0.5, "yelp": 0.5}


# --- models ---------------------------------------------------------------------------------------------------------

def test_baseline_learns_the_toy_task_and_ranks_its_words():
    texts, labels = _toy()
    search = sentiment.fit_bow_baseline(texts, labels, Cs=(1.0, 10.0), folds=3)
    test_texts, test_labels = _toy(60, seed=1)
    assert sentiment.accuracy(test_labels, search.predict(test_texts)) == 1.0
    negative, positive = sentiment.bow_top_words(search, k=3)
    assert {w for w, _ in positive} == set(POSITIVE) and {w for w, _ in negative} == set(NEGATIVE)
    with pytest.raises(ValueError, match="Cs"):
        sentiment.fit_bow_baseline(texts, labels, Cs=(0.0,))
    with pytest.raises(ValueError, match="labels"):
        sentiment.fit_bow_baseline(texts, labels[:-1])


@pytest.mark.parametrize("kind", ["mean", "cnn"])
def test_models_learn_and_are_reproducible(kind):
    texts, labels = _toy()
    vocab = sentiment.Vocabulary.from_texts(texts)
    ids = vocab.batch(texts)
    test_texts, test_labels = _toy(60, seed=1)
    val_texts, val_labels = _toy(60, seed=2)
    probas = []
    for _ in range(2):
        model = sentiment.build_model(kind, len(vocab), embedding_dim=8)
        history = sentiment.train(model, ids, labels, epochs=15, learning_rate=1e-2, seed=3,
                                  validation_data=(vocab.batch(val_texts), val_labels))
        probas.append(sentiment.predict_proba(model, vocab.batch(test_texts)))
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert 1 <= history["best_epoch"] <= 15
    assert sentiment.accuracy(test_labels, probas[0] >= 0.5) >= 0.95
    np.testing.assert_array_equal(probas[0], probas[1])
    other = sentiment.build_model(kind, len(vocab), embedding_dim=8)
    sentiment.train(other, ids, labels, epochs=2, learning_rate=1e-2, seed=4)
    assert not np.allclose(sentiment.predict_proba(other, vocab.batch(test_texts)), probas[0])


def test_padding_does_not_change_predictions():
    torch.manual_seed(0)
    for kind in ("mean", "cnn"):
        model = sentiment.build_model(kind, 10, embedding_dim=4).eval()
        ids = torch.tensor([[2, 3, 4, 5, 6]])
        padded = torch.cat([ids, torch.zeros(1, 7, dtype=torch.int64)], 1)
        with torch.no_grad():
            torch.testing.assert_close(model(ids), model(padded), rtol=1e-6, atol=1e-7)


def test_word_contributions_sum_to_the_logit_and_occlusion_is_the_probability_drop():
    texts, labels = _toy()
    vocab = sentiment.Vocabulary.from_texts(texts)
    model = sentiment.build_model("mean", len(vocab), embedding_dim=8)
    sentiment.train(model, vocab.batch(texts), labels, epochs=5, learning_rate=1e-2, seed=0)
    sentence = "the food was great zebra"
    shares = sentiment.word_contributions(model, vocab, sentence)
    assert [w for w, _ in shares] == ["the", "food", "was", "great", "zebra (<unk>)"]
    with torch.no_grad():
        logit = float(model(vocab.batch([sentence]))[0])
    assert sum(s for _, s in shares) + model.linear.bias.item() == pytest.approx(logit, rel=1e-5)
    drops = dict(sentiment.occlusion(model, vocab, sentence))
    without = sentiment.predict_proba(model, vocab.batch(["the food was zebra"]))[0]
    full = sentiment.predict_proba(model, vocab.batch([sentence]))[0]
    assert drops["great"] == pytest.approx(full - without, abs=1e-12) and drops["great"] > 0
    with pytest.raises(TypeError, match="MeanEmbedding"):
        sentiment.word_contributions(sentiment.build_model("cnn", len(vocab)), vocab, sentence)


def test_model_argument_errors():
    with pytest.raises(ValueError, match="kind"):
        sentiment.build_model("lstm", 10)
    with pytest.raises(ValueError, match="vocab_size"):
        sentiment.build_model("mean", 0)
    with pytest.raises(ValueError, match="dropout"):
        sentiment.build_model("cnn", 10, dropout=1.0)
    model = sentiment.build_model("mean", 10)
    ids = torch.zeros(4, 3, dtype=torch.int64)
    with pytest.raises(TypeError, match="ids"):
        sentiment.train(model, ids.float(), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="labels"):
        sentiment.train(model, ids, [0, 1, 0])
    with pytest.raises(ValueError, match="epochs"):
        sentiment.train(model, ids, [0, 1, 0, 1], epochs=0)
    with pytest.raises(ValueError, match="learning_rate"):
        sentiment.train(model, ids, [0, 1, 0, 1], learning_rate=0.0)
    with pytest.raises(TypeError, match="validation_data"):
        sentiment.train(model, ids, [0, 1, 0, 1], validation_data=ids)
    with pytest.raises(TypeError, match="model"):
        sentiment.train("mean", ids, [0, 1, 0, 1])
    with pytest.raises(ValueError, match="models"):
        sentiment.fit_models(None, [], [], models=("svm",))


def test_single_thread_restores_the_thread_count():
    before = torch.get_num_threads()
    with sentiment.single_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


# --- prior knowledge: VADER's sentence score -------------------------------------------------------------------------

def test_vader_compound_is_vaders_own_score():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    texts = ["The food was not good.", "I LOVE this phone!!!", "It arrived on Tuesday.", "Great plot, but awful actors."]
    reference = SentimentIntensityAnalyzer()
    expected = [reference.polarity_scores(t)["compound"] for t in texts]
    got = sentiment.vader_compound(texts)
    assert got.dtype == np.float64 and got.shape == (4,)
    np.testing.assert_array_equal(got, expected)
    assert got[0] < 0 < got[1] and got[2] == 0.0       # negation flips "good"; no lexicon word scores 0
    with pytest.raises(TypeError, match="texts"):
        sentiment.vader_compound("one sentence, not a list")


def test_prior_model_adds_the_weighted_score_to_the_mean_pooled_logit():
    torch.manual_seed(0)
    prior_model = sentiment.build_model("mean_vader", 10, embedding_dim=4).eval()
    plain = sentiment.build_model("mean", 10, embedding_dim=4).eval()
    plain.load_state_dict({k: v for k, v in prior_model.state_dict().items() if k != "prior_weight"})
    with torch.no_grad():
        prior_model.prior_weight.fill_(1.5)
    ids, prior = torch.tensor([[2, 3, 4], [5, 6, 0]]), torch.tensor([0.25, -0.5])
    with torch.no_grad():
        torch.testing.assert_close(prior_model(ids, prior), plain(ids) + 1.5 * prior)
    p = sentiment.predict_proba(prior_model, ids, prior=prior.numpy())
    np.testing.assert_allclose(p, torch.sigmoid(plain(ids) + 1.5 * prior).detach().double().numpy(), rtol=1e-6)


def test_prior_model_learns_from_the_prior_alone():
    """Sentences of filler words only: the words carry nothing, the prior carries the label."""
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(FILLER, size=4)) for _ in range(200)]
    labels = np.arange(200) % 2
    prior = np.where(labels == 1, 0.6, -0.6) + rng.normal(0, 0.1, 200)
    vocab = sentiment.Vocabulary.from_texts(texts)
    ids = vocab.batch(texts)
    runs = []
    for _ in range(2):
        model = sentiment.build_model("mean_vader", len(vocab), embedding_dim=4)
        history = sentiment.train(model, ids[:160], labels[:160], epochs=10, learning_rate=5e-2, seed=1, prior=prior[:160],
                                  validation_data=(ids[160:], labels[160:], prior[160:]))
        runs.append(sentiment.predict_proba(model, ids[160:], prior=prior[160:]))
    assert model.prior_weight.item() > 0.3      # early stopping keeps the first epoch with every validation row right
    assert sentiment.accuracy(labels[160:], runs[0] >= 0.5) == 1.0
    assert 1 <= history["best_epoch"] <= 10
    np.testing.assert_array_equal(runs[0], runs[1])
    plain = sentiment.build_model("mean", len(vocab), embedding_dim=4)
    sentiment.train(plain, ids[:160], labels[:160], epochs=10, learning_rate=5e-2, seed=1)
    assert sentiment.accuracy(labels[160:], sentiment.predict_proba(plain, ids[160:]) >= 0.5) < 0.8


def test_prior_argument_errors():
    prior_model, plain = sentiment.build_model("mean_vader", 10), sentiment.build_model("mean", 10)
    ids, labels = torch.zeros(4, 3, dtype=torch.int64), [0, 1, 0, 1]
    with pytest.raises(ValueError, match=r"`prior`.*Received: prior=None"):
        sentiment.train(prior_model, ids, labels)
    with pytest.raises(ValueError, match=r"`prior` is only for a PriorMeanEmbedding"):
        sentiment.predict_proba(plain, ids, prior=np.zeros(4))
    with pytest.raises(ValueError, match=r"`prior` must hold 4 finite numbers.*shape \(3,\)"):
        sentiment.train(prior_model, ids, labels, prior=np.zeros(3))
    with pytest.raises(ValueError, match=r"`prior` must hold 4 finite numbers"):
        sentiment.predict_proba(prior_model, ids, prior=np.array([0.0, np.nan, 0.0, 0.0]))
    with pytest.raises(TypeError, match=r"validation_data.*triple"):
        sentiment.train(prior_model, ids, labels, prior=np.zeros(4), validation_data=(ids, labels))
    with pytest.raises(ValueError, match=r"validation_data\[2\]"):
        sentiment.train(prior_model, ids, labels, prior=np.zeros(4), validation_data=(ids, labels, np.zeros(2)))
    with pytest.raises(TypeError, match="without a prior"):
        sentiment.word_contributions(prior_model, sentiment.Vocabulary.from_texts(["a b"]), "a b")
    with pytest.raises(TypeError, match="models"):
        sentiment.fit_models(None, [], [], models="bow")


def test_baseline_with_vader_has_one_more_feature_and_uses_it():
    texts, labels = _toy()
    plain = sentiment.fit_bow_baseline(texts, labels, Cs=(1.0,), folds=3)
    with_vader = sentiment.fit_bow_baseline(texts, labels, Cs=(1.0,), folds=3, vader=True)
    n_words = plain.best_estimator_.steps[-1][1].coef_.shape[1]
    coef = with_vader.best_estimator_.steps[-1][1].coef_[0]
    assert coef.shape == (n_words + 1,)
    assert coef[-1] > 0          # VADER scores the toy's positive words above its negative ones
    with pytest.raises(TypeError, match="vader"):
        sentiment.fit_bow_baseline(texts, labels, vader="yes")


def test_chapter_constants_are_the_measured_ones():
    """The notebook's STORED (mean, std) and STORED_RANGE (min, max) are benchmarks/sentiment.json's, as
    printed (4 decimals); its accuracy thresholds are scripts/thresholds/sentiment.py's, below the worst
    seed of benchmarks/sentiment_thresholds.md."""
    import ast
    import importlib.util
    import json
    import re

    from tests.notebooks import ROOT

    cells = json.loads((ROOT / "book/applications/sentiment.ipynb").read_text(encoding="utf-8"))["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    summary = json.loads((ROOT / "benchmarks/sentiment.json").read_text(encoding="utf-8"))["summary"]
    stored = ast.literal_eval(re.search(r"^STORED = (\{.*?\})$", code, re.M | re.S).group(1))
    ranges = ast.literal_eval(re.search(r"^STORED_RANGE = (\{.*?\})$", code, re.M | re.S).group(1))
    for name, (mean, std) in stored.items():
        assert (mean, std) == pytest.approx((summary[name]["mean"], summary[name]["std"]), abs=5e-5), name
    for name, (low, high) in ranges.items():
        assert (low, high) == pytest.approx((summary[name]["min"], summary[name]["max"]), abs=5e-5), name
    spec = importlib.util.spec_from_file_location("thr_sentiment", ROOT / "scripts/thresholds/sentiment.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    notebook = ast.literal_eval(re.search(r"^THRESHOLDS = (\{.*?\})", code, re.M).group(1))
    assert set(notebook) == {"bow", "mean", "cnn", "mean_vader", "bow_vader"}
    table = (ROOT / "benchmarks/sentiment_thresholds.md").read_text(encoding="utf-8")
    for key, value in notebook.items():
        threshold, kind = module.THRESHOLDS[f"{key}_accuracy"]
        assert (value, kind) == (threshold, "min"), key
        low = float(re.search(rf"^\| sentiment \| {key}_accuracy \| \d+ \| ([\d.]+) \|", table, re.M).group(1))
        assert threshold < low, (key, threshold, low)
        assert ranges[f"{key}/in-source/all"][0] >= low - 5e-5, key   # the same runs: the same worst seed
