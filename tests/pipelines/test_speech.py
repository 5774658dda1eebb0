"""Spoken-digit pipeline: loading, splits, sequence generator, CTC decoding and digit error rate."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from dlnotes.pipelines import speech as sp


@pytest.fixture(scope="module")
def rec():
    return sp.load_fsdd()


def test_load_fsdd(rec):
    assert len(rec.waves) == 1500 and rec.labels.shape == (1500,)
    assert all(np.bincount(rec.labels[rec.speakers == s]).tolist() == [50] * 10 for s in sp.SPEAKERS)
    peaks = np.array([np.abs(w).max() for w in rec.waves])
    np.testing.assert_allclose(peaks, 1.0)  # theo's quiet recordings are normalised too
    assert sum(w.size > sp.FIXED_SAMPLES for w in rec.waves) == 4  # only 4 of theo's are cut


def test_random_split_is_stratified_and_disjoint(rec):
    tr, te = sp.random_split(rec.labels, rec.speakers, test_fraction=0.2, seed=0)
    assert len(np.intersect1d(tr, te)) == 0 and len(tr) + len(te) == 1500
    for s in sp.SPEAKERS:
        assert np.bincount(rec.labels[te][rec.speakers[te] == s]).tolist() == [10] * 10


def test_speaker_split(rec):
    a, b = sp.speaker_split(rec.speakers, "theo")
    assert set(rec.speakers[b]) == {"theo"} and "theo" not in set(rec.speakers[a]) and len(a) == 1000


def test_log_mel_shapes(rec):
    x = sp.log_mel_batch(rec.waves[:3])
    assert x.shape == (3, 1, 40, 89) and x.dtype == np.float32
    np.testing.assert_allclose(x.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    assert sp.mean_mfcc(rec.waves[:2]).shape == (2, 26)


def test_models_shapes():
    assert sp.digit_cnn()(torch.zeros(2, 1, 40, 89)).shape == (2, 10)
    for t in (7, 8, 200, 201):
        assert sp.CRNN()(torch.zeros(1, 40, t)).shape == (1, int(sp.output_length(t)), 11)


def test_make_sequences_deterministic_and_from_pool(rec):
    pool = np.array([0, 60, 120])  # digits 0, 1, 2 of jackson
    w1, t1 = sp.make_sequences(rec.waves, rec.labels, pool, n_sequences=20, seed=3)
    w2, t2 = sp.make_sequences(rec.waves, rec.labels, pool, n_sequences=20, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(w1, w2)) and all(np.array_equal(a, b) for a, b in zip(t1, t2))
    assert all(2 <= len(t) <= 4 and set(t.tolist()) <= {0, 1, 2} for t in t1)


def test_greedy_decode_collapses_repeats_then_blanks():
    b = sp.BLANK
    assert sp.greedy_decode([b, 3, 3, b, 3, 5, 5, b, b]) == [3, 3, 5]
    assert sp.greedy_decode([b, b]) == []
    assert sp.greedy_decode([1, 1, 1]) == [1]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 10), max_size=30))
def test_greedy_decode_property(path):
    out = sp.greedy_decode(path)
    assert sp.BLANK not in out and len(out) <= len(path)
    # a path built from the output with blanks between repeats decodes back to it
    rebuilt = []
    for d in out:
        rebuilt += [sp.BLANK, d, d]
    assert sp.greedy_decode(rebuilt) == out


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 9), max_size=8), st.lists(st.integers(0, 9), max_size=8))
def test_edit_distance_matches_nltk(a, b):
    import nltk
    assert sp.edit_distance(a, b) == nltk.edit_distance(a, b)


def test_digit_error_rate():
    import nltk
    refs, hyps = [[1, 2, 3], [4, 5]], [[1, 3], [4, 5, 6, 7]]
    expected = (nltk.edit_distance(refs[0], hyps[0]) + nltk.edit_distance(refs[1], hyps[1])) / 5
    assert sp.digit_error_rate(refs, hyps) == pytest.approx(expected)
    assert sp.digit_error_rate(refs, refs) == 0.0


def test_constant_baseline():
    assert sp.constant_baseline([np.array([7, 7, 1]), np.array([7, 2]), np.array([3, 4])]) == [7, 7]


def test_ctc_training_lowers_the_loss(rec):
    pool = np.flatnonzero((rec.speakers == "jackson") & (rec.labels < 2))
    w, t = sp.make_sequences(rec.waves, rec.labels, pool, n_sequences=48, seed=0)
    f = [sp.log_mel(x, n_samples=None).astype(np.float32) for x in w]
    torch.manual_seed(0)
    before = sp.ctc_loss(sp.CRNN(), f, t)
    model = sp.train_crnn(f, t, epochs=10, seed=0)
    assert sp.ctc_loss(model, f, t) < 0.7 * before


def test_bad_speakers():
    with pytest.raises(ValueError, match=r"`speakers` must be a non-empty subset of .* Received: speakers=\('bob',\)"):
        sp.load_fsdd(("bob",))


def test_bad_held_out(rec):
    with pytest.raises(ValueError, match=r"`held_out` must be one of the speakers present. Received: held_out='bob'"):
        sp.speaker_split(rec.speakers, "bob")


def test_bad_min_len(rec):
    with pytest.raises(ValueError, match=r"`min_len` must be in \[1, max_len\]. Received: min_len=5, max_len=4"):
        sp.make_sequences(rec.waves, rec.labels, [0], n_sequences=1, seed=0, min_len=5)


def test_bad_epochs():
    with pytest.raises(ValueError, match=r"`epochs` must be a positive integer. Received: epochs=0"):
        sp.train_cnn(np.zeros((2, 1, 40, 89)), np.zeros(2), epochs=0)


def test_bad_best_path():
    with pytest.raises(ValueError, match=r"`best_path` must be 1-D. Received: best_path.shape=\(2, 2\)"):
        sp.greedy_decode(np.zeros((2, 2)))


def test_bad_der_lengths():
    with pytest.raises(ValueError, match=r"`refs` and `hyps` must be non-empty and of equal length. Received: 1 and 0"):
        sp.digit_error_rate([[1]], [])


def test_bad_test_fraction(rec):
    with pytest.raises(TypeError, match=r"`test_fraction`"):
        sp.random_split(rec.labels, rec.speakers, test_fraction="a")


def _chapter_code():
    import json

    from tests.notebooks import ROOT

    cells = json.loads((ROOT / "book/applications/speech.ipynb").read_text(encoding="utf-8"))["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def test_chapter_thresholds_are_the_measured_ones():
    """The notebook's checked thresholds are scripts/thresholds/speech.py's, beyond the worst seed measured."""
    import ast
    import importlib.util
    import re

    from tests.notebooks import ROOT

    spec = importlib.util.spec_from_file_location("thr_speech", ROOT / "scripts/thresholds/speech.py")
    thresholds = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(thresholds)
    in_notebook = ast.literal_eval(re.search(r"^THRESHOLDS = (\{.*?\})", _chapter_code(), re.M).group(1))
    assert in_notebook == {k: v for k, (v, _) in thresholds.THRESHOLDS.items()}
    table = (ROOT / "benchmarks/speech_thresholds.md").read_text(encoding="utf-8")
    for metric, (threshold, kind) in thresholds.THRESHOLDS.items():
        row = re.search(rf"^\| speech \| {metric} \| 5 \| ([\d.]+) \| [\d.]+ \| ([\d.]+) \|", table, re.M)
        worst = float(row.group(1) if kind == "min" else row.group(2))
        assert (threshold < worst) if kind == "min" else (threshold > worst), (metric, threshold, worst)


def test_chapter_seed_summary_is_the_stored_one():
    """The mean ± std glued into the summary table are benchmarks/speech.json's, rounded as printed."""
    import ast
    import json
    import re

    from tests.notebooks import ROOT

    stored = ast.literal_eval(re.search(r"^STORED = (\{.*?\})$", _chapter_code(), re.M | re.S).group(1))
    summary = json.loads((ROOT / "benchmarks/speech.json").read_text(encoding="utf-8"))["summary"]
    for metric, (mean, std) in stored.items():
        assert mean == pytest.approx(summary[metric]["mean"], abs=5e-5), metric
        assert std == pytest.approx(summary[metric]["std"], abs=5e-5), metric
