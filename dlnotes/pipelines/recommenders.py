r"""Recommendation and click prediction on MovieLens: splits, baselines, matrix factorisation, ranking, CTR.

For the chapter *Recommendation and ad click prediction* (``book/applications/recommenders.ipynb``,
outline §6). Everything runs on MovieLens latest-small (100,836 ratings of 9,724 movies by 610
users, :func:`load_movielens`), in the order the chapter teaches it:

1. **Splits** (:func:`random_split`, :func:`temporal_split`): a fixed random 90/10 split of the
   rating rows, and a per-user temporal split that holds out each user's latest ratings.
2. **Rating prediction**: the global mean, the regularised user/item biases fitted by
   alternating least squares (:func:`fit_biases`, the same estimator as Surprise's
   ``BaselineOnly``), and biased matrix factorisation trained in PyTorch
   (:class:`MatrixFactorization`, :func:`train_mf`), scored by :func:`rmse`; :func:`surprise_rmse`
   runs Surprise's algorithms on the identical rows.
3. **Top-k recommendation** with full ranking (:func:`rank_metrics`: HR@k and NDCG@k over every
   item a user has not rated in training) for a popularity baseline (:func:`popularity_scores`),
   the rating model, and the same factorisation trained for ranking with the BPR loss
   (:func:`train_bpr`); :func:`sampled_hit_rate` is the sampled protocol, for comparison.
4. **Click-through prediction**: a factorisation machine (:class:`FactorizationMachine`, Rendle
   2010) on one-hot user, item and genre features (:func:`fm_features`), scored by :func:`roc_auc`,
   :func:`log_loss` and :func:`calibration_bins` against the base-rate predictor.

Ratings are :class:`pandas.DataFrame` objects with integer columns ``user`` and ``item`` (dense
indices from :func:`index_ids`), float ``rating`` and integer ``timestamp``. Metrics take NumPy
arrays and return Python floats. pandas and Surprise are imported where needed.
"""

from __future__ import annotations

import copy
import math
import zipfile

import numpy as np

import torch
import torch.nn.functional as F
from torch import nn

from dlnotes._checks import check_float_array, check_ndarray, check_positive_float, check_positive_int, check_real
from dlnotes.runtime import _check_seed, seed_everything

__all__ = [
    "RATING_SCALE", "CLICK_THRESHOLD", "MF_GRID", "MF_MAX_EPOCHS", "MF_TRAINING", "BPR_DIM", "BPR_GRID",
    "BPR_TRAINING", "FM_DIM", "FM_TRAINING", "LOGISTIC_C",
    "load_movielens", "index_ids", "random_split", "temporal_split",
    "rmse", "global_mean", "fit_biases", "predict_biases",
    "MatrixFactorization", "build_mf", "train_mf", "predict_mf", "tune_mf", "surprise_rmse",
    "score_matrix", "popularity_scores", "interaction_mask", "rank_metrics", "hit_rate_at_k", "ndcg_at_k", "sampled_hit_rate",
    "train_bpr", "top_k",
    "fm_features", "FactorizationMachine", "build_fm", "train_fm", "predict_fm",
    "roc_auc", "log_loss", "calibration_bins",
]

RATING_SCALE = (0.5, 5.0)   # MovieLens stars, in half-star steps
CLICK_THRESHOLD = 4.0       # a rating >= 4 counts as a "click" (a positive interaction)

# The chapter's settings (the notebook and scripts/thresholds/recommenders.py both read these).
MF_GRID = ({"dim": 64, "weight_decay": 0.12}, {"dim": 64, "weight_decay": 0.15})
MF_MAX_EPOCHS = 30
MF_TRAINING = {"batch_size": 8192, "learning_rate": 0.01, "bias_weight_decay": 0.004}
BPR_DIM = 64
BPR_GRID = (0.01, 0.02)
BPR_TRAINING = {"epochs": 16, "batch_size": 4096, "learning_rate": 0.003}
FM_DIM = 32
FM_TRAINING = {"epochs": 8, "batch_size": 4096, "learning_rate": 0.003, "weight_decay": 3e-3}
LOGISTIC_C = 1.0
_COLUMNS = ("user", "item", "rating", "timestamp")


# --- data ------------------------------------------------------------------------------------

def load_movielens():
    """MovieLens latest-small: ``(ratings, movies)`` as DataFrames, read from the course's zip.

    ``ratings`` has the file's columns ``userId, movieId, rating, timestamp`` (100,836 rows);
    ``movies`` has ``movieId, title, genres`` (9,742 rows, genres joined by ``|``). The zip comes
    from :func:`dlnotes.data.fetch` (``"movielens-small"``), SHA-256 checked.
    """
    import pandas as pd

    from dlnotes import data

    with zipfile.ZipFile(data.fetch("movielens-small")) as archive:
        with archive.open("ml-latest-small/ratings.csv") as f:
            ratings = pd.read_csv(f)
        with archive.open("ml-latest-small/movies.csv") as f:
            movies = pd.read_csv(f)
    return ratings, movies


def index_ids(ratings):
    """Dense indices for users and items: ``(frame, user_ids, item_ids)``.

    ``frame`` has the columns ``user, item, rating, timestamp``, with ``user`` in
    ``[0, n_users)`` and ``item`` in ``[0, n_items)`` numbered in the order of the sorted original
    ids, so ``user_ids[frame.user]`` and ``item_ids[frame.item]`` give back ``userId`` and
    ``movieId``. Only items that have at least one rating get an index.
    """
    import pandas as pd

    if not isinstance(ratings, pd.DataFrame) or not {"userId", "movieId", "rating", "timestamp"} <= set(ratings):
        raise ValueError("`ratings` must be a DataFrame with columns userId, movieId, rating, timestamp. "
                         f"Received: ratings of type {type(ratings).__name__}")
    user_ids = np.sort(ratings["userId"].unique())
    item_ids = np.sort(ratings["movieId"].unique())
    frame = pd.DataFrame({
        "user": np.searchsorted(user_ids, ratings["userId"].to_numpy()),
        "item": np.searchsorted(item_ids, ratings["movieId"].to_numpy()),
        "rating": ratings["rating"].to_numpy(dtype=np.float64),
        "timestamp": ratings["timestamp"].to_numpy(dtype=np.int64),
    })
    return frame, user_ids, item_ids


def _check_frame(name: str, value):
    import pandas as pd

    if not isinstance(value, pd.DataFrame) or not set(_COLUMNS) <= set(value.columns):
        raise ValueError(f"`{name}` must be a DataFrame with columns {_COLUMNS} (see index_ids). "
                         f"Received: {name} of type {type(value).__name__}"
                         + (f" with columns {tuple(value.columns)}" if isinstance(value, pd.DataFrame) else ""))
    if len(value) == 0:
        raise ValueError(f"`{name}` must have at least one row. Received: {name} with 0 rows")
    return value


def random_split(frame, *, test_fraction: float = 0.1, seed: int = 0):
    """A fixed random split of the rating rows: ``(train, test)``.

    The rows are permuted by ``numpy.random.default_rng(seed)``; the first
    ``round(test_fraction * n)`` rows of the permutation are the test rows. Every row lands in
    exactly one part, and the same ``seed`` gives the same split on every machine. The index of
    ``frame`` is kept, so the two parts can be checked against the original rows.
    """
    frame = _check_frame("frame", frame)
    test_fraction = check_real("test_fraction", test_fraction, 0.0, 1.0, low_open=True, high_open=True)
    seed = _check_seed(seed)
    order = np.random.default_rng(seed).permutation(len(frame))
    n_test = int(round(test_fraction * len(frame)))
    if not 0 < n_test < len(frame):
        raise ValueError(f"`test_fraction` leaves an empty part of {len(frame)} rows. Received: test_fraction={test_fraction}")
    return frame.iloc[np.sort(order[n_test:])], frame.iloc[np.sort(order[:n_test])]


def temporal_split(frame, *, test_fraction: float = 0.1):
    r"""Each user's latest ratings held out: ``(train, test)``.

    User :math:`u` with :math:`n_u` ratings, sorted by ``(timestamp, item)`` (the item breaks
    ties, so the split is deterministic), keeps the first :math:`n_u - t_u` in ``train`` and
    puts the last

    .. math::

        t_u = \min\big(\lceil \text{test\_fraction} \cdot n_u \rceil,\; n_u - 1\big)

    in ``test``: every user with two or more ratings has at least one test rating and keeps at
    least one training rating, and no test rating of a user is older than any of their training
    ratings. Other users' ratings are not cut at a common date, so the training part still holds
    ratings that are newer than some test ratings of other users.
    """
    frame = _check_frame("frame", frame)
    test_fraction = check_real("test_fraction", test_fraction, 0.0, 1.0, low_open=True, high_open=True)
    ordered = frame.sort_values(["user", "timestamp", "item"], kind="stable")
    size = ordered.groupby("user")["item"].transform("size").to_numpy()
    position = ordered.groupby("user").cumcount().to_numpy()
    n_test = np.minimum(np.ceil(test_fraction * size - 1e-9).astype(np.int64), size - 1)
    is_test = position >= size - n_test
    return ordered[~is_test].sort_index(), ordered[is_test].sort_index()


# --- rating prediction -----------------------------------------------------------------------

def rmse(y_true, y_pred) -> float:
    r"""Root-mean-square error, :math:`\sqrt{\frac{1}{n} \sum_j (y_j - \hat y_j)^2}`.

    Matches ``sklearn.metrics.mean_squared_error(...) ** 0.5`` and ``surprise.accuracy.rmse``.
    """
    y_true, y_pred = _check_pair("y_true", y_true, "y_pred", y_pred)
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2)))


def _check_pair(name_a, a, name_b, b):
    a = check_float_array(name_a, a).astype(np.float64).ravel()
    b = check_float_array(name_b, b).astype(np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"`{name_a}` and `{name_b}` must have the same length. Received: {len(a)} and {len(b)}")
    if a.size == 0:
        raise ValueError(f"`{name_a}` must not be empty. Received: {name_a} of length 0")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError(f"`{name_a}` and `{name_b}` must be finite. Received: a NaN or an infinity")
    return a, b


def global_mean(train) -> float:
    """The mean training rating :math:`\\mu`: the predictor that ignores who and what."""
    return float(_check_frame("train", train)["rating"].mean())


def fit_biases(train, n_users: int, n_items: int, *, reg_user: float = 15.0, reg_item: float = 10.0,
               epochs: int = 10):
    r"""Regularised user and item biases by alternating least squares: ``(mu, b_user, b_item)``.

    The model is :math:`\hat r_{ui} = \mu + b_u + b_i`, fitted to minimise

    .. math::

        \sum_{(u,i) \in R} (r_{ui} - \mu - b_u - b_i)^2 + \lambda_u \sum_u b_u^2 + \lambda_i \sum_i b_i^2 .

    With the other biases fixed each one has a closed form; one epoch updates every item, then
    every user:

    .. math::

        b_i = \frac{\sum_{u \in R(i)} (r_{ui} - \mu - b_u)}{\lambda_i + |R(i)|}, \qquad
        b_u = \frac{\sum_{i \in R(u)} (r_{ui} - \mu - b_i)}{\lambda_u + |R(u)|}.

    The defaults (``reg_user=15``, ``reg_item=10``, ``epochs=10``) and the order of the updates
    are those of Surprise's ``BaselineOnly`` with ``method="als"`` (Koren 2010), so the biases agree
    with it to rounding. A user or item without training ratings keeps bias 0.

    Returns:
        ``mu`` (float), ``b_user`` float64 ``(n_users,)``, ``b_item`` float64 ``(n_items,)``.
    """
    train = _check_frame("train", train)
    n_users, n_items = check_positive_int("n_users", n_users), check_positive_int("n_items", n_items)
    reg_user = check_real("reg_user", reg_user, 0.0)
    reg_item = check_real("reg_item", reg_item, 0.0)
    epochs = check_positive_int("epochs", epochs)
    users, items = _indices(train, n_users, n_items)
    ratings = train["rating"].to_numpy(np.float64)
    mu = float(ratings.mean())
    count_u = np.bincount(users, minlength=n_users)
    count_i = np.bincount(items, minlength=n_items)
    b_user, b_item = np.zeros(n_users), np.zeros(n_items)
    for _ in range(epochs):
        b_item = np.bincount(items, weights=ratings - mu - b_user[users], minlength=n_items) / (reg_item + count_i)
        b_user = np.bincount(users, weights=ratings - mu - b_item[items], minlength=n_users) / (reg_user + count_u)
    return mu, b_user, b_item


def _indices(frame, n_users, n_items):
    users = frame["user"].to_numpy(np.int64)
    items = frame["item"].to_numpy(np.int64)
    if users.min() < 0 or users.max() >= n_users:
        raise ValueError(f"`user` indices must be in [0, {n_users}). Received: users in [{users.min()}, {users.max()}]")
    if items.min() < 0 or items.max() >= n_items:
        raise ValueError(f"`item` indices must be in [0, {n_items}). Received: items in [{items.min()}, {items.max()}]")
    return users, items


def predict_biases(biases, frame, *, clip: bool = True) -> np.ndarray:
    """:math:`\\mu + b_u + b_i` for every row of ``frame``, clipped to :data:`RATING_SCALE` (as Surprise does)."""
    mu, b_user, b_item = biases
    users, items = _indices(_check_frame("frame", frame), len(b_user), len(b_item))
    pred = mu + b_user[users] + b_item[items]
    return np.clip(pred, *RATING_SCALE) if clip else pred


class MatrixFactorization(nn.Module):
    r"""Biased matrix factorisation: :math:`\hat r_{ui} = \mu + b_u + b_i + p_u^\top q_i`.

    ``p_u`` and ``q_i`` are rows of two ``nn.Embedding`` tables of width ``dim``, drawn from
    :math:`\mathcal{N}(0, \text{init\_std}^2)`; the biases start at 0 and :math:`\mu` is a
    fixed buffer (the training mean; 0 for a ranking model). Input: int64 ``users`` and
    ``items`` of shape ``(n,)``; output float32 ``(n,)``.
    """

    def __init__(self, n_users: int, n_items: int, dim: int, *, mu: float = 0.0, init_std: float = 0.1):
        super().__init__()
        self.user_factors = nn.Embedding(n_users, dim)
        self.item_factors = nn.Embedding(n_items, dim)
        self.user_bias = nn.Embedding(n_users, 1)
        self.item_bias = nn.Embedding(n_items, 1)
        nn.init.normal_(self.user_factors.weight, std=init_std)
        nn.init.normal_(self.item_factors.weight, std=init_std)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)
        self.register_buffer("mu", torch.tensor(float(mu)))

    def forward(self, users, items):
        p, q = self.user_factors(users), self.item_factors(items)
        return self.mu + self.user_bias(users)[:, 0] + self.item_bias(items)[:, 0] + (p * q).sum(dim=1)

    def penalty(self, users, items):
        r"""Per-row L2 term :math:`b_u^2 + b_i^2 + \lVert p_u \rVert^2 + \lVert q_i \rVert^2`, shape ``(n,)``."""
        return self.bias_penalty(users, items) + self.factor_penalty(users, items)

    def bias_penalty(self, users, items):
        r"""Per-row :math:`b_u^2 + b_i^2`, shape ``(n,)``."""
        return self.user_bias(users)[:, 0] ** 2 + self.item_bias(items)[:, 0] ** 2

    def factor_penalty(self, users, items):
        r"""Per-row :math:`\lVert p_u \rVert^2 + \lVert q_i \rVert^2`, shape ``(n,)``."""
        return (self.user_factors(users) ** 2).sum(dim=1) + (self.item_factors(items) ** 2).sum(dim=1)


class FactorizationMachine(nn.Module):
    r"""A second-order factorisation machine (Rendle 2010) that returns logits.

    .. math::

        \hat y(x) = w_0 + \sum_j w_j x_j + \sum_{j < l} \langle v_j, v_l \rangle x_j x_l ,
        \qquad
        \sum_{j<l} \langle v_j, v_l \rangle x_j x_l
        = \tfrac{1}{2} \sum_{f=1}^{k} \Big[\Big(\sum_j v_{jf} x_j\Big)^2 - \sum_j v_{jf}^2 x_j^2\Big],

    the right-hand form costs :math:`O(k \cdot \text{nnz}(x))` instead of :math:`O(k\, d^2)`.
    A row is given sparsely by ``index`` (int64 ``(n, m)``) and ``value`` (float32 ``(n, m)``):
    the features it has and their values; padding uses index ``n_features`` with value 0.
    """

    def __init__(self, n_features: int, dim: int, *, init_std: float = 0.01):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(()))
        self.weights = nn.Embedding(n_features + 1, 1)
        self.factors = nn.Embedding(n_features + 1, dim)
        nn.init.zeros_(self.weights.weight)
        nn.init.normal_(self.factors.weight, std=init_std)

    def pairwise(self, index, value):
        vx = self.factors(index) * value[..., None]                      # (n, m, k)
        return 0.5 * (vx.sum(dim=1) ** 2 - (vx ** 2).sum(dim=1)).sum(dim=1)

    def forward(self, index, value):
        linear = self.bias + (self.weights(index)[..., 0] * value).sum(dim=1)
        return linear + self.pairwise(index, value)

    def penalty(self, index, value):
        """Per-row L2 term of the features the row has: :math:`\\sum_j (w_j^2 + \\lVert v_j \\rVert^2) [x_j \\ne 0]`."""
        present = (value != 0).float()
        return ((self.weights(index)[..., 0] ** 2 + (self.factors(index) ** 2).sum(dim=2)) * present).sum(dim=1)


def build_mf(n_users: int, n_items: int, *, dim: int = 32, mu: float = 0.0, init_std: float = 0.1, seed: int = 0):
    """A :class:`MatrixFactorization` whose weights are drawn after ``dlnotes.seed_everything(seed)``."""
    n_users, n_items = check_positive_int("n_users", n_users), check_positive_int("n_items", n_items)
    dim = check_positive_int("dim", dim)
    init_std = check_positive_float("init_std", init_std)
    mu = check_real("mu", mu)
    seed_everything(seed)
    return MatrixFactorization(n_users, n_items, dim, mu=mu, init_std=init_std)


def _tensors(frame, model):

    n_users, n_items = model.user_factors.num_embeddings, model.item_factors.num_embeddings
    users, items = _indices(_check_frame("frame", frame), n_users, n_items)
    return (torch.as_tensor(users.copy()), torch.as_tensor(items.copy()),
            torch.as_tensor(frame["rating"].to_numpy(np.float32, copy=True)))


def _check_training(epochs, batch_size, learning_rate, weight_decay, seed):
    return (check_positive_int("epochs", epochs), check_positive_int("batch_size", batch_size),
            check_positive_float("learning_rate", learning_rate), check_real("weight_decay", weight_decay, 0.0),
            _check_seed(seed))


def train_mf(model, train, *, epochs: int = 10, batch_size: int = 1024, learning_rate: float = 0.01,
             weight_decay: float = 0.05, bias_weight_decay: float | None = None, seed: int = 0,
             validation_data=None, keep_best: bool = False):
    r"""Fit a :class:`MatrixFactorization` to ratings with Adam: returns the per-epoch ``History``.

    Each mini-batch :math:`B` minimises the squared error plus an L2 penalty on the parameters
    its rows use (the per-rating regularisation of Funk's SVD and of Surprise's ``SVD``):

    .. math::

        J_B = \frac{1}{|B|} \sum_{(u,i) \in B} \Big[(r_{ui} - \hat r_{ui})^2
        + \lambda \big(\lVert p_u \rVert^2 + \lVert q_i \rVert^2\big)
        + \lambda_b \big(b_u^2 + b_i^2\big)\Big],

    with :math:`\lambda` = ``weight_decay`` and :math:`\lambda_b` = ``bias_weight_decay``
    (``None``: the same as :math:`\lambda`, as in Surprise's ``SVD``). The rows are shuffled every epoch by a
    ``torch.Generator`` seeded with ``seed``. ``History`` holds ``"loss"`` (the mean training
    MSE of the epoch, without the penalty) and, with ``validation_data`` (a ratings frame),
    ``"val_rmse"``. ``keep_best=True`` restores the weights of the epoch with the lowest
    validation RMSE (early stopping's choice) and adds ``"best_epoch"`` (1-based).
    """

    epochs, batch_size, learning_rate, weight_decay, seed = _check_training(epochs, batch_size, learning_rate,
                                                                            weight_decay, seed)
    bias_weight_decay = weight_decay if bias_weight_decay is None else check_real("bias_weight_decay",
                                                                                  bias_weight_decay, 0.0)
    if keep_best and validation_data is None:
        raise ValueError("`keep_best=True` needs `validation_data`. Received: validation_data=None")
    users, items, ratings = _tensors(train, model)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    history = {"loss": []}
    if validation_data is not None:
        history["val_rmse"] = []
    best, best_state = math.inf, None
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(users), generator=generator)
        total = 0.0
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            u, i, r = users[batch], items[batch], ratings[batch]
            error = (model(u, i) - r) ** 2
            loss = (error + weight_decay * model.factor_penalty(u, i)
                    + bias_weight_decay * model.bias_penalty(u, i)).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(error.detach().sum())
        history["loss"].append(total / len(users))
        if validation_data is not None:
            score = rmse(validation_data["rating"].to_numpy(), predict_mf(model, validation_data))
            history["val_rmse"].append(score)
            if keep_best and score < best:
                best, best_state = score, copy.deepcopy(model.state_dict())
    if keep_best:
        model.load_state_dict(best_state)
        history["best_epoch"] = [float(int(np.argmin(history["val_rmse"])) + 1)]
    return history


def predict_mf(model, frame, *, clip: bool = True) -> np.ndarray:
    """The model's rating for every row of ``frame`` (float64 ``(n,)``), clipped to :data:`RATING_SCALE`."""

    users, items, _ = _tensors(frame, model)
    model.eval()
    with torch.no_grad():
        pred = model(users, items).double().numpy()
    return np.clip(pred, *RATING_SCALE) if clip else pred


def tune_mf(train, validation, n_users: int, n_items: int, grid, *, epochs: int = 20, seed: int = 0, **train_args):
    """Grid search on a validation slice: one :func:`train_mf` with early stopping per setting.

    ``grid`` is a sequence of dicts with keys ``dim`` and ``weight_decay``. Every setting trains
    on ``train`` for up to ``epochs`` epochs, scored on ``validation`` after each one. Returns a
    list of dicts ``{"dim", "weight_decay", "best_epoch", "val_rmse"}`` in the grid's order; the
    test rows never enter.
    """
    if not grid or not all(isinstance(g, dict) and {"dim", "weight_decay"} <= set(g) for g in grid):
        raise ValueError(f"`grid` must be a non-empty list of dicts with keys 'dim' and 'weight_decay'. Received: grid={grid!r}")
    mu = global_mean(train)
    rows = []
    for setting in grid:
        model = build_mf(n_users, n_items, dim=setting["dim"], mu=mu, seed=seed)
        history = train_mf(model, train, epochs=epochs, weight_decay=setting["weight_decay"], seed=seed,
                           validation_data=validation, **train_args)
        best = int(np.argmin(history["val_rmse"]))
        rows.append({"dim": setting["dim"], "weight_decay": setting["weight_decay"], "best_epoch": best + 1,
                     "val_rmse": history["val_rmse"][best]})
    return rows


def surprise_rmse(train, test, algorithm) -> tuple[float, np.ndarray]:
    """Fit a Surprise algorithm on exactly ``train``'s rows and predict exactly ``test``'s: ``(rmse, predictions)``.

    The trainset is built with ``surprise.Dataset.load_from_df`` on the ``user, item, rating``
    columns and ``Reader(rating_scale=RATING_SCALE)``; predictions are clipped to the scale
    (Surprise's default), and the RMSE is ``surprise.accuracy.rmse`` of them.
    """
    import surprise
    from surprise import accuracy

    train, test = _check_frame("train", train), _check_frame("test", test)
    if not isinstance(algorithm, surprise.AlgoBase):
        raise TypeError(f"`algorithm` must be a Surprise algorithm. Received: algorithm={algorithm!r}")
    reader = surprise.Reader(rating_scale=RATING_SCALE)
    trainset = surprise.Dataset.load_from_df(train[["user", "item", "rating"]], reader).build_full_trainset()
    algorithm.fit(trainset)
    rows = zip(test["user"].to_numpy(), test["item"].to_numpy(), test["rating"].to_numpy())
    predictions = algorithm.test([(int(u), int(i), float(r)) for u, i, r in rows])
    return float(accuracy.rmse(predictions, verbose=False)), np.array([p.est for p in predictions])


# --- top-k recommendation --------------------------------------------------------------------

def score_matrix(model) -> np.ndarray:
    """Every user's score for every item from a :class:`MatrixFactorization`: float64 ``(n_users, n_items)``."""

    with torch.no_grad():
        scores = (model.mu + model.user_bias.weight + model.item_bias.weight.T
                  + model.user_factors.weight @ model.item_factors.weight.T)
    return scores.double().numpy()


def popularity_scores(train, n_users: int, n_items: int) -> np.ndarray:
    """The same score for every user: how many training ratings each item has, ``(n_users, n_items)``."""
    users, items = _indices(_check_frame("train", train), check_positive_int("n_users", n_users),
                            check_positive_int("n_items", n_items))
    counts = np.bincount(items, minlength=n_items).astype(np.float64)
    return np.broadcast_to(counts, (n_users, n_items))


def interaction_mask(frame, n_users: int, n_items: int, *, min_rating: float | None = None) -> np.ndarray:
    """Boolean ``(n_users, n_items)``: which (user, item) pairs ``frame`` holds (with rating >= ``min_rating``)."""
    frame = _check_frame("frame", frame)
    if min_rating is not None:
        frame = frame[frame["rating"] >= min_rating]
    mask = np.zeros((n_users, n_items), dtype=bool)
    if len(frame):
        users, items = _indices(frame, n_users, n_items)
        mask[users, items] = True
    return mask



def _check_ranking(scores, exclude, relevant, k):
    scores = check_ndarray("scores", scores, ndim=2)
    exclude = check_ndarray("exclude", exclude, ndim=2)
    relevant = check_ndarray("relevant", relevant, ndim=2)
    if exclude.shape != scores.shape or relevant.shape != scores.shape:
        raise ValueError(f"`scores`, `exclude` and `relevant` must have the same shape. Received: {scores.shape}, "
                         f"{exclude.shape} and {relevant.shape}")
    if exclude.dtype != bool or relevant.dtype != bool:
        raise TypeError(f"`exclude` and `relevant` must be boolean arrays. Received: dtypes {exclude.dtype} and {relevant.dtype}")
    if np.any(exclude & relevant):
        raise ValueError("`relevant` items must not be excluded: a held-out item is also marked as seen in training")
    k = check_positive_int("k", k)
    if k > scores.shape[1]:
        raise ValueError(f"`k` must be at most the {scores.shape[1]} items. Received: k={k}")
    return scores, exclude, relevant, k


def top_k(scores: np.ndarray, exclude: np.ndarray, k: int = 10) -> np.ndarray:
    """Each user's ``k`` best items among those not excluded, best first: int64 ``(n_users, k)``.

    Full ranking: every item that is not excluded competes. Ties go to the lower item index (a
    stable sort), so the lists are deterministic.
    """
    scores, exclude, _, k = _check_ranking(scores, exclude, np.zeros_like(exclude, dtype=bool), k)
    masked = np.where(exclude, -np.inf, scores)
    return np.argsort(-masked, axis=1, kind="stable")[:, :k]


def hit_rate_at_k(scores, exclude, relevant, k: int = 10) -> float:
    r"""HR@k: the share of users with at least one relevant item among their top ``k``.

    Averaged over the users with at least one relevant item; ``exclude`` (the items a user
    rated in training) never enters the ranking.
    """
    return rank_metrics(scores, exclude, relevant, k)["hr"]


def ndcg_at_k(scores, exclude, relevant, k: int = 10) -> float:
    r"""NDCG@k with binary relevance, averaged over users with at least one relevant item.

    .. math::

        \mathrm{DCG@k}_u = \sum_{j=1}^{k} \frac{\mathrm{rel}_u(j)}{\log_2(j + 1)}, \qquad
        \mathrm{NDCG@k}_u = \frac{\mathrm{DCG@k}_u}{\sum_{j=1}^{\min(k, |\mathrm{rel}_u|)} 1/\log_2(j + 1)},

    where :math:`\mathrm{rel}_u(j)` is 1 if the item at rank :math:`j` is relevant. Matches
    ``sklearn.metrics.ndcg_score(relevant, scores, k=k)`` when scores have no ties.
    """
    return rank_metrics(scores, exclude, relevant, k)["ndcg"]


def rank_metrics(scores, exclude, relevant, k: int = 10) -> dict:
    """HR@k and NDCG@k from one full ranking: ``{"hr", "ndcg", "users"}`` (see :func:`ndcg_at_k`).

    Args:
        scores: float ``(n_users, n_items)``, higher is better.
        exclude: bool ``(n_users, n_items)``, the items each user rated in training.
        relevant: bool ``(n_users, n_items)``, the held-out items that count as hits.
        k: the list length (default 10).
    """
    scores, exclude, relevant, k = _check_ranking(scores, exclude, relevant, k)
    has = relevant.any(axis=1)
    if not has.any():
        raise ValueError("`relevant` has no relevant item for any user")
    top = top_k(scores[has], exclude[has], k)
    hits = np.take_along_axis(relevant[has], top, axis=1)                 # (users, k)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discounts)[np.minimum(relevant[has].sum(axis=1), k) - 1]
    return {"hr": float(hits.any(axis=1).mean()), "ndcg": float(((hits * discounts).sum(axis=1) / ideal).mean()),
            "users": int(has.sum())}


def sampled_hit_rate(scores, exclude, relevant, k: int = 10, *, n_negatives: int = 100, seed: int = 0) -> float:
    """HR@k under the *sampled* protocol: each relevant item ranked against ``n_negatives`` random items.

    For every (user, relevant item) pair, draw ``n_negatives`` items uniformly from those the user
    neither rated in training nor holds as relevant; the pair is a hit if fewer than ``k`` of them
    score higher than the relevant item. Returns the mean over pairs. Krichene and Rendle (2020)
    show that this estimate can order models differently from the full ranking.
    """
    scores, exclude, relevant, k = _check_ranking(scores, exclude, relevant, k)
    n_negatives = check_positive_int("n_negatives", n_negatives)
    rng = np.random.default_rng(_check_seed(seed))
    hits = []
    for u in np.flatnonzero(relevant.any(axis=1)):
        candidates = np.flatnonzero(~exclude[u] & ~relevant[u])
        positives = scores[u, relevant[u]]
        if n_negatives < len(candidates):   # a uniform draw without replacement per pair: the smallest random keys
            keys = rng.random((len(positives), len(candidates)))
            drawn = candidates[np.argpartition(keys, n_negatives - 1, axis=1)[:, :n_negatives]]
        else:
            drawn = np.broadcast_to(candidates, (len(positives), len(candidates)))
        hits.append((scores[u, drawn] > positives[:, None]).sum(axis=1) < k)
    hits = np.concatenate(hits)
    return float(np.mean(hits))


def train_bpr(model, train, *, epochs: int = 10, batch_size: int = 1024, learning_rate: float = 0.01,
              weight_decay: float = 1e-4, seed: int = 0):
    r"""Fit a :class:`MatrixFactorization` (with ``mu=0``) for ranking with the BPR loss (Rendle et al. 2009).

    Every training pair :math:`(u, i)` is a positive; each epoch draws for it one item :math:`j`
    uniformly from all items (a "negative"; it is occasionally an item the user did rate). With
    :math:`x_{ui} = b_i + p_u^\top q_i` (the user bias cancels in a difference),

    .. math::

        J_B = \frac{1}{|B|} \sum_{(u,i,j) \in B} \Big[-\log \sigma(x_{ui} - x_{uj})
        + \lambda \big(\lVert p_u \rVert^2 + \lVert q_i \rVert^2 + \lVert q_j \rVert^2 + b_i^2 + b_j^2\big)\Big].

    Batches and negatives come from a ``torch.Generator`` seeded with ``seed``. Returns the
    ``History`` ``{"loss": [...]}`` (mean BPR loss per epoch, without the penalty).
    """

    epochs, batch_size, learning_rate, weight_decay, seed = _check_training(epochs, batch_size, learning_rate,
                                                                            weight_decay, seed)
    users, items, _ = _tensors(train, model)
    n_items = model.item_factors.num_embeddings
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    history = {"loss": []}
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(users), generator=generator)
        negatives = torch.randint(n_items, (len(users),), generator=generator)
        total = 0.0
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            u, i, j = users[batch], items[batch], negatives[batch]
            diff = model(u, i) - model(u, j)
            loss_rows = -F.logsigmoid(diff)
            penalty = (model.penalty(u, i) + (model.item_factors(j) ** 2).sum(dim=1) + model.item_bias(j)[:, 0] ** 2
                       - model.user_bias(u)[:, 0] ** 2)   # b_u cancels in the difference: not penalised
            loss = (loss_rows + weight_decay * penalty).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss_rows.detach().sum())
        history["loss"].append(total / len(users))
    return history


# --- click-through prediction ----------------------------------------------------------------

def fm_features(frame, movies, item_ids, n_users: int):
    r"""One-hot user, one-hot item and normalised multi-hot genre features, in sparse form.

    Feature layout: ``[0, n_users)`` users, then ``n_items`` items, then one feature per genre
    (sorted names). A row has :math:`x_{\text{user}} = 1`, :math:`x_{\text{item}} = 1` and, for
    a movie with :math:`g` genres, :math:`x_{\text{genre}} = 1/g` for each of them (Rendle's
    normalisation of a set-valued feature).

    Args:
        frame: ratings with dense ``user``/``item`` indices (:func:`index_ids`).
        movies: the ``movies.csv`` frame (``movieId``, ``genres``).
        item_ids: the ``movieId`` of each item index (from :func:`index_ids`).
        n_users: the number of user indices.

    Returns:
        ``(index, value, n_features, genres)``: int64 ``(n, m)``, float32 ``(n, m)`` with padding
        index ``n_features`` and value 0, the number of features, the genre names.
    """
    frame = _check_frame("frame", frame)
    n_users = check_positive_int("n_users", n_users)
    item_ids = check_ndarray("item_ids", item_ids, ndim=1)
    genre_lists = movies.set_index("movieId").loc[item_ids, "genres"].str.split("|")
    genres = sorted({g for gs in genre_lists for g in gs})
    width = max(len(gs) for gs in genre_lists)
    n_items = len(item_ids)
    n_features = n_users + n_items + len(genres)
    column = {g: n_users + n_items + j for j, g in enumerate(genres)}
    item_index = np.full((n_items, width), n_features, dtype=np.int64)
    item_value = np.zeros((n_items, width), dtype=np.float32)
    for row, gs in enumerate(genre_lists):
        item_index[row, :len(gs)] = [column[g] for g in gs]
        item_value[row, :len(gs)] = 1.0 / len(gs)
    users, items = _indices(frame, n_users, n_items)
    index = np.concatenate([users[:, None], n_users + items[:, None], item_index[items]], axis=1)
    value = np.concatenate([np.ones((len(frame), 2), np.float32), item_value[items]], axis=1)
    return index, value, n_features, genres


def build_fm(n_features: int, *, dim: int = 16, init_std: float = 0.01, seed: int = 0):
    """A :class:`FactorizationMachine` whose weights are drawn after ``dlnotes.seed_everything(seed)``."""
    n_features, dim = check_positive_int("n_features", n_features), check_positive_int("dim", dim)
    init_std = check_positive_float("init_std", init_std)
    seed_everything(seed)
    return FactorizationMachine(n_features, dim, init_std=init_std)


def _fm_tensors(model, index, value, labels=None):

    index = check_ndarray("index", index, ndim=2)
    value = check_ndarray("value", value, ndim=2)
    if index.shape != value.shape or not np.issubdtype(index.dtype, np.integer):
        raise ValueError(f"`index` (integers) and `value` must have the same shape. Received: {index.shape} "
                         f"({index.dtype}) and {value.shape}")
    n_features = model.weights.num_embeddings - 1
    if index.min() < 0 or index.max() > n_features:
        raise ValueError(f"`index` must be in [0, {n_features}]. Received: [{index.min()}, {index.max()}]")
    out = [torch.from_numpy(index.astype(np.int64)), torch.from_numpy(value.astype(np.float32))]
    if labels is not None:
        labels = check_float_array("labels", labels)
        if labels.shape != (len(index),) or not np.all((labels == 0) | (labels == 1)):
            raise ValueError(f"`labels` must be 0/1 of shape ({len(index)},). Received: labels with shape {labels.shape}")
        out.append(torch.from_numpy(labels.astype(np.float32)))
    return out


def train_fm(model, index, value, labels, *, epochs: int = 5, batch_size: int = 1024, learning_rate: float = 0.01,
             weight_decay: float = 1e-4, seed: int = 0, validation_data=None, keep_best: bool = False):
    r"""Fit a :class:`FactorizationMachine` to 0/1 labels by logistic loss with Adam: returns ``History``.

    .. math::

        J_B = \frac{1}{|B|} \sum_{n \in B} \Big[\ell\big(y_n, \sigma(\hat y(x_n))\big)
        + \lambda \sum_{j: x_{nj} \ne 0} \big(w_j^2 + \lVert v_j \rVert^2\big)\Big],
        \qquad \ell(y, p) = -y \log p - (1 - y) \log(1 - p).

    ``validation_data=(index, value, labels)`` adds ``"val_loss"`` (log-loss) per epoch;
    ``keep_best=True`` restores the epoch with the lowest one and adds ``"best_epoch"``.
    """

    epochs, batch_size, learning_rate, weight_decay, seed = _check_training(epochs, batch_size, learning_rate,
                                                                            weight_decay, seed)
    if keep_best and validation_data is None:
        raise ValueError("`keep_best=True` needs `validation_data`. Received: validation_data=None")
    index, value, labels = _fm_tensors(model, index, value, labels)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    history = {"loss": []}
    if validation_data is not None:
        history["val_loss"] = []
    best, best_state = math.inf, None
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(index), generator=generator)
        total = 0.0
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            x, v, y = index[batch], value[batch], labels[batch]
            rows = F.binary_cross_entropy_with_logits(model(x, v), y, reduction="none")
            loss = (rows + weight_decay * model.penalty(x, v)).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(rows.detach().sum())
        history["loss"].append(total / len(index))
        if validation_data is not None:
            val_index, val_value, val_labels = validation_data
            score = log_loss(val_labels, predict_fm(model, val_index, val_value))
            history["val_loss"].append(score)
            if keep_best and score < best:
                best, best_state = score, copy.deepcopy(model.state_dict())
    if keep_best:
        model.load_state_dict(best_state)
        history["best_epoch"] = [float(int(np.argmin(history["val_loss"])) + 1)]
    return history


def predict_fm(model, index, value) -> np.ndarray:
    """Click probabilities :math:`\\sigma(\\hat y(x))`, float64 ``(n,)``."""

    index, value = _fm_tensors(model, index, value)
    model.eval()
    with torch.no_grad():
        return torch.sigmoid(model(index, value)).double().numpy()


# --- classification metrics --------------------------------------------------------------------

def _check_binary(y_true, y_prob):
    y_true, y_prob = _check_pair("y_true", y_true, "y_prob", y_prob)
    if not np.all((y_true == 0) | (y_true == 1)):
        raise ValueError(f"`y_true` must hold only 0 and 1. Received: values {np.unique(y_true)[:5]}")
    return y_true, y_prob


def roc_auc(y_true, y_score) -> float:
    r"""Area under the ROC curve: the probability that a random positive outscores a random negative.

    By the Mann-Whitney statistic, with the average rank :math:`R_n` of each score (ties share
    their mean rank, which counts a tie as half a win):

    .. math::

        \mathrm{AUC} = \frac{\sum_{n: y_n = 1} R_n - n_+ (n_+ + 1)/2}{n_+ \, n_-}.

    Matches ``sklearn.metrics.roc_auc_score``. Needs both classes.
    """
    from scipy.stats import rankdata

    y_true, y_score = _check_binary(y_true, y_score)
    n_pos = int(y_true.sum())
    n_neg = len(y_true) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"`y_true` must contain both classes. Received: {n_pos} positives and {n_neg} negatives")
    ranks = rankdata(y_score)
    return float((ranks[y_true == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def log_loss(y_true, y_prob) -> float:
    r"""Mean binary cross-entropy :math:`-\frac{1}{n} \sum_n [y_n \log p_n + (1 - y_n) \log(1 - p_n)]`.

    Probabilities are clipped to :math:`[\epsilon, 1 - \epsilon]` with :math:`\epsilon` the
    float64 machine epsilon, as ``sklearn.metrics.log_loss`` does.
    """
    y_true, y_prob = _check_binary(y_true, y_prob)
    if y_prob.min() < 0 or y_prob.max() > 1:
        raise ValueError(f"`y_prob` must be in [0, 1]. Received: values in [{y_prob.min()}, {y_prob.max()}]")
    eps = np.finfo(np.float64).eps
    p = np.clip(y_prob, eps, 1 - eps)
    return float(-np.mean(y_true * np.log(p) + (1 - y_true) * np.log1p(-p)))


def calibration_bins(y_true, y_prob, *, n_bins: int = 10):
    r"""Reliability bins: ``(observed, predicted, counts)`` for the non-empty bins of ``[0, 1]``.

    Bin :math:`b` holds the predictions in :math:`(\tfrac{b-1}{B}, \tfrac{b}{B}]` (the first also
    0); ``observed`` is the share of positives in it, ``predicted`` the mean prediction, ``counts``
    how many rows. A calibrated model has ``observed`` close to ``predicted`` in every bin. The
    first two match ``sklearn.calibration.calibration_curve(y_true, y_prob, n_bins=n_bins)``.
    """
    y_true, y_prob = _check_binary(y_true, y_prob)
    n_bins = check_positive_int("n_bins", n_bins)
    if y_prob.min() < 0 or y_prob.max() > 1:
        raise ValueError(f"`y_prob` must be in [0, 1]. Received: values in [{y_prob.min()}, {y_prob.max()}]")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.searchsorted(edges[1:-1], y_prob, side="left")
    counts = np.bincount(which, minlength=n_bins)
    keep = counts > 0
    observed = np.bincount(which, weights=y_true, minlength=n_bins)[keep] / counts[keep]
    predicted = np.bincount(which, weights=y_prob, minlength=n_bins)[keep] / counts[keep]
    return observed, predicted, counts[keep]
