"""dlnotes.pipelines.recommenders: splits, baselines, MF, ranking and click metrics against trusted libraries.

Every metric is checked against the standard implementation on the same inputs:
RMSE against ``sklearn.metrics.mean_squared_error`` and ``surprise.accuracy.rmse`` (1e-12),
NDCG@k against ``sklearn.metrics.ndcg_score`` (1e-12), AUC against ``roc_auc_score`` (1e-12),
log-loss against ``sklearn.metrics.log_loss`` (1e-12), the reliability bins against
``sklearn.calibration.calibration_curve`` (1e-12). HR@k and the sampled hit rate have no library
twin and are checked against brute-force loops over their definitions. The ALS biases are
checked against Surprise's ``BaselineOnly`` (same estimator, same defaults) to 1e-10.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import surprise
import torch
from hypothesis import given, strategies as st
from sklearn.calibration import calibration_curve
from sklearn.metrics import log_loss as sk_log_loss, mean_squared_error, ndcg_score, roc_auc_score
from surprise import accuracy

from dlnotes.pipelines import recommenders as rec


def _frame(n_users=30, n_items=40, per_user=12, seed=0):
    """Synthetic ratings: each user rates ``per_user`` distinct items at distinct-ish times."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        for i in rng.choice(n_items, size=per_user, replace=False):
            rows.append((u, int(i), float(rng.integers(1, 11)) / 2, int(rng.integers(0, 50))))
    return pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])


@pytest.fixture(scope="module")
def movielens():
    ratings, movies = rec.load_movielens()
    frame, user_ids, item_ids = rec.index_ids(ratings)
    return frame, movies, user_ids, item_ids


# --- data and splits ---------------------------------------------------------------------------

def test_movielens_counts_and_index(movielens):
    frame, movies, user_ids, item_ids = movielens
    assert (len(frame), len(user_ids), len(item_ids)) == (100_836, 610, 9_724)
    assert frame["user"].between(0, 609).all() and frame["item"].between(0, 9_723).all()
    ratings, _ = rec.load_movielens()
    np.testing.assert_array_equal(user_ids[frame["user"]], ratings["userId"])
    np.testing.assert_array_equal(item_ids[frame["item"]], ratings["movieId"])


def test_random_split_is_disjoint_complete_and_deterministic(movielens):
    frame = movielens[0]
    train, test = rec.random_split(frame, test_fraction=0.1, seed=0)
    assert len(test) == round(0.1 * len(frame))
    assert set(train.index).isdisjoint(test.index)
    assert set(train.index) | set(test.index) == set(frame.index)
    again_train, again_test = rec.random_split(frame, test_fraction=0.1, seed=0)
    pd.testing.assert_frame_equal(test, again_test)
    pd.testing.assert_frame_equal(train, again_train)
    other = rec.random_split(frame, test_fraction=0.1, seed=1)[1]
    assert not test.index.equals(other.index)


def test_temporal_split_holds_each_users_latest_ratings(movielens):
    frame = movielens[0]
    train, test = rec.temporal_split(frame, test_fraction=0.1)
    assert set(train.index).isdisjoint(test.index)
    assert set(train.index) | set(test.index) == set(frame.index)
    last_train = train.groupby("user")["timestamp"].max()
    first_test = test.groupby("user")["timestamp"].min()
    assert (first_test >= last_train.loc[first_test.index]).all()
    sizes = frame.groupby("user").size()
    expected = np.minimum(np.ceil(0.1 * sizes - 1e-9), sizes - 1)
    pd.testing.assert_series_equal(test.groupby("user").size(), expected.astype(np.int64), check_names=False)
    pd.testing.assert_frame_equal(test, rec.temporal_split(frame, test_fraction=0.1)[1])


def test_temporal_split_breaks_timestamp_ties_by_item():
    frame = pd.DataFrame({"user": [0, 0, 0, 0], "item": [3, 1, 2, 0], "rating": [4.0] * 4, "timestamp": [5, 5, 5, 1]})
    train, test = rec.temporal_split(frame, test_fraction=0.5)
    assert sorted(test["item"]) == [2, 3]      # the two latest; among the tied, the higher items


def test_temporal_split_keeps_a_training_rating():
    frame = pd.DataFrame({"user": [0, 0, 1], "item": [0, 1, 0], "rating": [4.0] * 3, "timestamp": [1, 2, 3]})
    train, test = rec.temporal_split(frame, test_fraction=0.9)
    assert list(test["item"]) == [1] and sorted(train["user"]) == [0, 1]


# --- rating prediction --------------------------------------------------------------------------

@given(st.lists(st.tuples(st.floats(0.5, 5), st.floats(-1, 6)), min_size=1, max_size=50))
def test_rmse_matches_sklearn_and_surprise(pairs):
    y, p = np.array(pairs).T
    assert math.isclose(rec.rmse(y, p), mean_squared_error(y, p) ** 0.5, rel_tol=1e-12, abs_tol=1e-12)
    predictions = [surprise.Prediction(0, 0, float(a), float(b), {}) for a, b in zip(y, p)]
    assert math.isclose(rec.rmse(y, p), accuracy.rmse(predictions, verbose=False), rel_tol=1e-12, abs_tol=1e-12)


def test_biases_match_surprise_baseline_only():
    frame = _frame()
    train, test = rec.random_split(frame, test_fraction=0.2, seed=0)
    ours = rec.predict_biases(rec.fit_biases(train, 30, 40), test)
    score, theirs = rec.surprise_rmse(train, test, surprise.BaselineOnly(verbose=False))
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-10)
    assert math.isclose(score, rec.rmse(test["rating"], ours), rel_tol=1e-10)


def test_biases_are_the_als_fixed_point():
    """After enough epochs each bias is its own closed-form update given the others."""
    train = _frame()
    mu, b_user, b_item = rec.fit_biases(train, 30, 40, reg_user=2.0, reg_item=3.0, epochs=200)
    u, i, r = train["user"].to_numpy(), train["item"].to_numpy(), train["rating"].to_numpy()
    item_update = np.bincount(i, r - mu - b_user[u], 40) / (3.0 + np.bincount(i, minlength=40))
    np.testing.assert_allclose(b_item, item_update, atol=1e-10)


def test_mf_forward_is_the_formula():
    model = rec.build_mf(5, 7, dim=3, mu=3.5, seed=0)
    with torch.no_grad():
        model.user_bias.weight.normal_()
        model.item_bias.weight.normal_()
    u, i = torch.tensor([0, 4, 2]), torch.tensor([6, 0, 3])
    expected = (3.5 + model.user_bias.weight[u, 0] + model.item_bias.weight[i, 0]
                + (model.user_factors.weight[u] * model.item_factors.weight[i]).sum(1))
    torch.testing.assert_close(model(u, i), expected)
    np.testing.assert_allclose(rec.score_matrix(model)[u, i], expected.detach().double(), rtol=1e-6)


def test_mf_learns_and_is_reproducible():
    frame = _frame()
    train, val = rec.random_split(frame, test_fraction=0.2, seed=0)
    runs = []
    for _ in range(2):
        model = rec.build_mf(30, 40, dim=4, mu=rec.global_mean(train), seed=3)
        history = rec.train_mf(model, train, epochs=15, batch_size=64, learning_rate=0.05, weight_decay=0.01, seed=3,
                               validation_data=val)
        runs.append((model, history))
    loss = runs[0][1]["loss"]
    assert loss[-1] < 0.5 * loss[0]
    assert runs[0][1] == runs[1][1]
    for a, b in zip(runs[0][0].parameters(), runs[1][0].parameters()):
        assert torch.equal(a, b)
    other = rec.build_mf(30, 40, dim=4, seed=4)
    assert not torch.equal(other.user_factors.weight, runs[0][0].user_factors.weight)


def test_keep_best_restores_the_best_epoch():
    train, val = rec.random_split(_frame(), test_fraction=0.2, seed=0)
    model = rec.build_mf(30, 40, dim=8, mu=rec.global_mean(train), seed=0)
    history = rec.train_mf(model, train, epochs=12, batch_size=32, learning_rate=0.05, weight_decay=0.0, seed=0,
                           validation_data=val, keep_best=True)
    best = int(history["best_epoch"][0])
    assert history["val_rmse"][best - 1] == min(history["val_rmse"])
    assert math.isclose(rec.rmse(val["rating"], rec.predict_mf(model, val)), min(history["val_rmse"]), rel_tol=1e-9)


def test_bpr_learns_to_rank_the_training_pairs():
    train = _frame()
    model = rec.build_mf(30, 40, dim=8, seed=0)
    history = rec.train_bpr(model, train, epochs=30, batch_size=64, learning_rate=0.05, weight_decay=1e-4, seed=0)
    assert history["loss"][-1] < 0.75 * history["loss"][0]      # random negatives include a few positives: no 0
    seen = rec.interaction_mask(train, 30, 40)
    scores = rec.score_matrix(model)
    assert roc_auc_score(seen.ravel(), scores.ravel()) > 0.9


# --- ranking metrics -------------------------------------------------------------------------------

def _ranking_case(seed, n_users=12, n_items=30):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(n_users, n_items))
    exclude = rng.random((n_users, n_items)) < 0.3
    relevant = (rng.random((n_users, n_items)) < 0.15) & ~exclude
    relevant[0] = False                       # a user without relevant items is skipped
    return scores, exclude, relevant


@given(st.integers(0, 10_000), st.integers(1, 15))
def test_ndcg_matches_sklearn(seed, k):
    scores, exclude, relevant = _ranking_case(seed)
    users = relevant.any(axis=1)
    sk_scores = np.where(exclude, -1e9, scores)[users]          # excluded items sink to the bottom
    expected = ndcg_score(relevant[users].astype(float), sk_scores, k=k)
    assert math.isclose(rec.ndcg_at_k(scores, exclude, relevant, k), expected, rel_tol=1e-12, abs_tol=1e-12)


@given(st.integers(0, 10_000), st.integers(1, 15))
def test_hit_rate_matches_a_loop(seed, k):
    scores, exclude, relevant = _ranking_case(seed)
    hits = []
    for u in range(len(scores)):
        if relevant[u].any():
            candidates = [i for i in range(scores.shape[1]) if not exclude[u, i]]
            top = sorted(candidates, key=lambda i: -scores[u, i])[:k]
            hits.append(any(relevant[u, i] for i in top))
    assert rec.hit_rate_at_k(scores, exclude, relevant, k) == np.mean(hits)


def test_top_k_never_recommends_an_excluded_item():
    scores, exclude, _ = _ranking_case(0)
    top = rec.top_k(scores, exclude, 10)
    assert top.shape == (12, 10)
    assert not np.take_along_axis(exclude, top, axis=1).any()
    assert (np.diff(np.take_along_axis(scores, top, axis=1), axis=1) <= 0).all()


def test_sampled_hit_rate_with_every_negative_is_the_pairwise_rank():
    scores, exclude, relevant = _ranking_case(1)
    expected = []
    for u in np.flatnonzero(relevant.any(axis=1)):
        negatives = scores[u, ~exclude[u] & ~relevant[u]]
        expected += [np.sum(negatives > scores[u, i]) < 5 for i in np.flatnonzero(relevant[u])]
    assert rec.sampled_hit_rate(scores, exclude, relevant, 5, n_negatives=1000) == np.mean(expected)
    few = rec.sampled_hit_rate(scores, exclude, relevant, 5, n_negatives=8, seed=0)
    assert few >= np.mean(expected) and few == rec.sampled_hit_rate(scores, exclude, relevant, 5, n_negatives=8, seed=0)


# --- click prediction -------------------------------------------------------------------------------

def test_fm_pairwise_term_is_the_double_sum():
    model = rec.build_fm(9, dim=4, init_std=0.5, seed=0)
    index = np.array([[0, 3, 5, 9], [1, 2, 8, 6]])
    value = np.array([[1.0, 1.0, 0.5, 0.0], [1.0, 1.0, 0.25, 0.75]], dtype=np.float32)
    v = model.factors.weight.detach().double().numpy()
    expected = []
    for row_index, row_value in zip(index, value):
        x = np.zeros(10)
        x[row_index] = row_value
        expected.append(sum(v[a] @ v[b] * x[a] * x[b] for a in range(10) for b in range(a + 1, 10)))
    ours = model.pairwise(torch.from_numpy(index), torch.from_numpy(value)).detach().double().numpy()
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-7)


def test_fm_features_layout(movielens):
    frame, movies, user_ids, item_ids = movielens
    rows = frame.iloc[:500]
    index, value, n_features, genres = rec.fm_features(rows, movies, item_ids, len(user_ids))
    assert n_features == 610 + 9_724 + len(genres) and "Drama" in genres
    np.testing.assert_array_equal(index[:, 0], rows["user"])
    np.testing.assert_array_equal(index[:, 1], 610 + rows["item"].to_numpy())
    np.testing.assert_allclose(value[:, 2:].sum(axis=1), 1.0, rtol=1e-6)
    assert (index[value == 0] == n_features).all()


def test_fm_learns_a_click_pattern():
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 20, 2000), rng.integers(0, 20, 2000)
    labels = ((users % 2) == (items % 2)).astype(np.float64)        # a pure interaction: needs the pairwise term
    index = np.stack([users, 20 + items], axis=1)
    value = np.ones_like(index, dtype=np.float32)
    model = rec.build_fm(40, dim=4, init_std=0.1, seed=0)
    history = rec.train_fm(model, index, value, labels, epochs=20, batch_size=128, learning_rate=0.05,
                           weight_decay=0.0, seed=0)
    assert history["loss"][-1] < 0.3 * history["loss"][0]
    assert rec.roc_auc(labels, rec.predict_fm(model, index, value)) > 0.99


@given(st.integers(0, 10_000), st.integers(2, 200))
def test_auc_logloss_calibration_match_sklearn(seed, n):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n).astype(float)
    y[:2] = [0, 1]
    p = np.round(rng.random(n), 1)                       # rounded: many ties, some exact 0 and 1
    assert math.isclose(rec.roc_auc(y, p), roc_auc_score(y, p), rel_tol=1e-12)
    assert math.isclose(rec.log_loss(y, p), sk_log_loss(y, y_proba=p), rel_tol=1e-12)
    observed, predicted, counts = rec.calibration_bins(y, p, n_bins=10)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=10)
    np.testing.assert_allclose(observed, prob_true, rtol=1e-12)
    np.testing.assert_allclose(predicted, prob_pred, rtol=1e-12)
    assert counts.sum() == n


def test_base_rate_log_loss_is_the_entropy():
    y = np.array([1, 0, 0, 1, 1, 0, 0, 0], float)
    rate = y.mean()
    assert math.isclose(rec.log_loss(y, np.full(8, rate)), -(rate * math.log(rate) + (1 - rate) * math.log(1 - rate)))
    assert rec.roc_auc(y, np.full(8, rate)) == 0.5


# --- argument errors -----------------------------------------------------------------------------------

def test_argument_errors():
    frame = _frame()
    with pytest.raises(ValueError, match=r"`test_fraction` must be in \(0.0, 1.0\). Received: test_fraction=1.5"):
        rec.random_split(frame, test_fraction=1.5)
    with pytest.raises(ValueError, match="`frame` must be a DataFrame with columns"):
        rec.temporal_split(frame.drop(columns="timestamp"))
    with pytest.raises(ValueError, match="`epochs` must be a positive integer. Received: epochs=0"):
        rec.fit_biases(frame, 30, 40, epochs=0)
    with pytest.raises(ValueError, match=r"`item` indices must be in \[0, 10\)"):
        rec.fit_biases(frame, 30, 10)
    with pytest.raises(ValueError, match="`y_true` and `y_pred` must have the same length. Received: 2 and 3"):
        rec.rmse([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="`y_true` must contain both classes"):
        rec.roc_auc([1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match=r"`y_prob` must be in \[0, 1\]"):
        rec.log_loss([1, 0], [1.2, 0.3])
    with pytest.raises(ValueError, match="`y_true` must hold only 0 and 1"):
        rec.calibration_bins([2, 0], [0.2, 0.3])
    with pytest.raises(ValueError, match="`learning_rate` must be a positive number. Received: learning_rate=-1"):
        rec.train_mf(rec.build_mf(30, 40), frame, learning_rate=-1)
    with pytest.raises(ValueError, match="`keep_best=True` needs `validation_data`"):
        rec.train_mf(rec.build_mf(30, 40), frame, keep_best=True)
    scores, exclude, relevant = _ranking_case(0)
    with pytest.raises(ValueError, match="`k` must be at most the 30 items. Received: k=31"):
        rec.rank_metrics(scores, exclude, relevant, 31)
    with pytest.raises(ValueError, match="`relevant` items must not be excluded"):
        rec.rank_metrics(scores, exclude, relevant | exclude, 5)
    with pytest.raises(TypeError, match="`exclude` and `relevant` must be boolean arrays"):
        rec.rank_metrics(scores, exclude.astype(int), relevant, 5)
    with pytest.raises(TypeError, match="`algorithm` must be a Surprise algorithm"):
        rec.surprise_rmse(frame, frame, "SVD")
    with pytest.raises(ValueError, match="`grid` must be a non-empty list of dicts"):
        rec.tune_mf(frame, frame, 30, 40, [{"dim": 4}])


def test_chapter_thresholds_and_seed_ranges_are_the_measured_ones():
    """The notebook's checked constants are scripts/thresholds/recommenders.py's, beyond the worst seed of
    every table in benchmarks/recommenders_thresholds.md (1 and 2 threads), and its SPREAD is the
    table's min and max (to the 4 decimals it prints)."""
    import ast
    import json
    import re

    from tests.helpers import TABLE_NUMBER, chapter_thresholds_hold
    from tests.notebooks import ROOT

    notebook = "book/applications/recommenders.ipynb"
    chapter_thresholds_hold("recommenders", notebook, {
        "RMSE_RANDOM_MAX": "rmse_random", "MATCH_TOLERANCE": "mf_minus_svd_temporal", "HR_MIN": "hr10",
        "NDCG_MIN": "ndcg10", "AUC_MIN": "auc", "LOGLOSS_MAX": "log_loss", "AUC_GAP_MAX": "logistic_minus_fm_auc",
        "ECE_MAX": "ece"})
    cells = json.loads((ROOT / notebook).read_text(encoding="utf-8"))["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    spread = ast.literal_eval(re.search(r"^SPREAD = (\{.*?\})$", code, re.M | re.S).group(1))
    table = (ROOT / "benchmarks/recommenders_thresholds.md").read_text(encoding="utf-8")
    for metric, (low, high) in spread.items():
        row = re.search(rf"^\| recommenders \| {metric} \| \d+ \| ({TABLE_NUMBER}) \| {TABLE_NUMBER} \| ({TABLE_NUMBER}) \|",
                        table, re.M)
        assert row, metric
        # both sides are rounded (the table to 4 significant digits, SPREAD to 4 decimals): 6e-5 covers the two
        assert (float(row.group(1)), float(row.group(2))) == pytest.approx((low, high), abs=6e-5), metric
