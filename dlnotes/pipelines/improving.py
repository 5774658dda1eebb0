r"""Improving a model one measured step at a time: augmentation, regularisation, tuning, ensembling.

For the chapter *How to improve a model* (``book/faq/improving.ipynb``, outline §9.2). The chapter
runs :func:`run_ablation` once (:data:`LIVE`); ``scripts/improving_ablation.py`` runs it over five
seeds with a larger tuner budget, and :func:`learning_curve` over training-set sizes.

Everything runs on the course's offline MNIST split: 4,000 training images, of which
:func:`split_validation` keeps 500 aside for every decision (early stopping, the tuner), and
the 1,000 test images, touched only to report. The steps are cumulative recipes
(:data:`STEPS`), each a :class:`Recipe`:

``baseline``
    the outline's CNN (:func:`dlnotes.pipelines.image_classifier.build_torch_model`'s
    architecture), Adam, 5 epochs: the image-classifier chapter's recipe in PyTorch;
``augmentation``
    plus :func:`random_affine` on every training batch (a new small rotation, shift and zoom
    of each image every epoch), and 10 epochs to use them;
``regularisation``
    plus batch normalisation, dropout, decoupled weight decay (AdamW), a one-cycle learning-rate
    schedule and early stopping on the validation loss;
``tuning``
    the architecture and optimiser settings chosen by :func:`tune` (Optuna's TPE sampler) under a
    fixed trial budget, scored on the validation images only;
``ensemble``
    the average of the softmax outputs of independently seeded models of the tuned recipe
    (:func:`ensemble_proba`); test-time augmentation (:func:`predict_proba` with ``tta``) is the
    cheap variant;
``final``
    once validation has made every decision, the tuned recipe trained on all 4,000 images
    (one model, and an ensemble), in the script only (``run_ablation(final=True)``).

Images are channels-first float32 tensors ``(n, 1, 28, 28)`` in ``[0, 1]``; labels int64 ``(n,)``.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dlnotes._checks import check_choice, check_positive_int, check_real
from dlnotes.runtime import seed_everything

__all__ = ["Recipe", "STEPS", "LIVE", "SEARCH_SPACE", "split_validation", "random_affine", "affine", "build_model",
           "train", "predict_proba", "ensemble_proba", "accuracy", "tune", "Ablation", "run_ablation",
           "learning_curve"]


# --- data ------------------------------------------------------------------------------------

def _check_images(name: str, value) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.dtype != torch.float32 or value.ndim != 4 or value.shape[1] != 1:
        raise ValueError(f"`{name}` must be a float32 tensor of shape (n, 1, H, W). Received: {name} with shape "
                         f"{tuple(getattr(value, 'shape', ()))} and dtype {getattr(value, 'dtype', type(value).__name__)}")
    return value


def _check_labels(name: str, value, n: int) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.dtype != torch.int64 or value.shape != (n,):
        raise ValueError(f"`{name}` must be an int64 tensor of shape ({n},). Received: {name} with shape "
                         f"{tuple(getattr(value, 'shape', ()))} and dtype {getattr(value, 'dtype', type(value).__name__)}")
    return value


def split_validation(x: torch.Tensor, y: torch.Tensor, *, n_val: int = 500, seed: int = 0):
    """A random validation split carved from the training images: ``(x_fit, y_fit), (x_val, y_val)``.

    The permutation comes from a ``torch.Generator`` seeded with ``seed``, so the split is the
    same on every machine. The test images never enter this function.

    Raises:
        ValueError: ``n_val`` is not in ``[1, n - 1]``, or bad tensors.
    """
    x = _check_images("x", x)
    y = _check_labels("y", y, len(x))
    n_val = check_positive_int("n_val", n_val)
    if n_val >= len(x):
        raise ValueError(f"`n_val` must be smaller than the {len(x)} images. Received: n_val={n_val}")
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    fit, val = order[n_val:], order[:n_val]
    return (x[fit], y[fit]), (x[val], y[val])


def random_affine(images: torch.Tensor, generator: torch.Generator, *, degrees: float = 10.0, shift: float = 2.0,
                  scale: float = 0.1) -> torch.Tensor:
    r"""Each image rotated, zoomed and shifted by its own random amount: data augmentation.

    For image :math:`i`, draw :math:`\phi_i \sim U(-\text{degrees}, \text{degrees})`,
    :math:`s_i \sim U(1 - \text{scale}, 1 + \text{scale})` and a shift
    :math:`t_i \sim U(-\text{shift}, \text{shift})^2` pixels. The output pixel at :math:`p`
    (relative to the image centre) reads the input at

    .. math::

        q = \frac{1}{s_i} R(\phi_i)\, p + t_i,

    by bilinear interpolation, zero outside the image (``F.affine_grid`` + ``F.grid_sample``,
    with ``align_corners=False``: pixel centres at :math:`(2k + 1)/W - 1` in the normalised
    coordinates).

    Args:
        images: float32 ``(n, 1, H, W)``.
        generator: the ``torch.Generator`` the random amounts are drawn from.
        degrees, shift, scale: the ranges (0 turns each off).

    Returns:
        float32 ``(n, 1, H, W)``.
    """
    images = _check_images("images", images)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"`generator` must be a torch.Generator. Received: generator={generator!r}")
    degrees = check_real("degrees", degrees, 0.0, 180.0)
    shift = check_real("shift", shift, 0.0)
    scale = check_real("scale", scale, 0.0, 1.0, high_open=True)
    n, _, height, width = images.shape
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(degrees)
    zoom = 1 + (torch.rand(n, generator=generator) * 2 - 1) * scale
    offset = (torch.rand(n, 2, generator=generator) * 2 - 1) * shift
    return affine(images, angle, zoom, offset)


def affine(images: torch.Tensor, angle: torch.Tensor, zoom: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """The warp of :func:`random_affine` for given angles (radians), zooms and shifts ``(n, 2)`` in pixels (x, y)."""
    images = _check_images("images", images)
    _, _, height, width = images.shape
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    # theta maps output to input in normalised coordinates; a pixel is 2 / W of them wide.
    theta = torch.stack([torch.stack([cos, -sin * height / width, offset[:, 0] * 2 / width], dim=1),
                         torch.stack([sin * width / height, cos, offset[:, 1] * 2 / height], dim=1)], dim=1)
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


# --- models and recipes ------------------------------------------------------------------------

def build_model(*, conv_blocks: int = 1, width: int = 32, dropout: float = 0.0, batch_norm: bool = False) -> nn.Sequential:
    """A small CNN for 28x28 digits; the defaults are the outline's (693,962 parameters).

    ``conv_blocks`` blocks of [3x3 convolution (``width``, then twice as many channels per block),
    optional batch normalisation, ReLU, 2x2 max-pooling], then Flatten, dropout, Dense 128 + ReLU,
    dropout, Dense 10 (logits). The first block has no padding, as in the outline
    (28 -> 26 -> 13); later blocks pad (13 -> 13 -> 6). Kernels Glorot-uniform, biases zero,
    like the outline's Keras layers.
    """
    conv_blocks = check_choice("conv_blocks", conv_blocks, (1, 2, 3))
    width = check_positive_int("width", width)
    dropout = check_real("dropout", dropout, 0.0, 1.0, high_open=True)
    if not isinstance(batch_norm, bool):
        raise TypeError(f"`batch_norm` must be a bool. Received: batch_norm={batch_norm!r}")
    layers, channels, size = [], 1, 28
    for block in range(conv_blocks):
        out = width * 2 ** block
        layers += [nn.Conv2d(channels, out, 3, padding=0 if block == 0 else 1)]
        layers += [nn.BatchNorm2d(out)] if batch_norm else []
        layers += [nn.ReLU(), nn.MaxPool2d(2)]
        size = (size - 2 if block == 0 else size) // 2
        channels = out
    layers += [nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels * size * size, 128), nn.ReLU(),
               nn.Dropout(dropout), nn.Linear(128, 10)]
    model = nn.Sequential(*layers)
    with torch.no_grad():
        for layer in model:
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
    return model


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Everything that decides a training run, besides the seed and the data.

    Attributes:
        epochs, batch_size, learning_rate: the loop; the learning rate is the peak one with ``"onecycle"``.
        weight_decay: AdamW's decoupled decay :math:`\\lambda` (0: plain Adam).
        schedule: ``"constant"`` or ``"onecycle"`` (warm up to the peak over the first 30 % of the
            steps, then anneal to almost zero, ``torch.optim.lr_scheduler.OneCycleLR``).
        augment: apply :func:`random_affine` to every training batch.
        patience: early stopping: stop after this many epochs without a lower validation loss and
            restore the best epoch's weights (``None``: train every epoch, keep the last).
        conv_blocks, width, dropout, batch_norm: passed to :func:`build_model`.
    """

    epochs: int = 5
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "constant"
    augment: bool = False
    patience: int | None = None
    conv_blocks: int = 1
    width: int = 32
    dropout: float = 0.0
    batch_norm: bool = False

    def __post_init__(self):
        check_positive_int("epochs", self.epochs)
        check_positive_int("batch_size", self.batch_size)
        check_real("learning_rate", self.learning_rate, 0.0, low_open=True)
        check_real("weight_decay", self.weight_decay, 0.0)
        check_choice("schedule", self.schedule, ("constant", "onecycle"))
        if self.patience is not None:
            check_positive_int("patience", self.patience)

    def model(self) -> nn.Sequential:
        return build_model(conv_blocks=self.conv_blocks, width=self.width, dropout=self.dropout,
                           batch_norm=self.batch_norm)


_REGULARISED = dict(augment=True, epochs=12, batch_size=64, batch_norm=True, dropout=0.25, weight_decay=1e-3,
                    schedule="onecycle", learning_rate=3e-3, patience=6)

#: The cumulative steps before tuning (the tuned recipe comes from :func:`tune`).
STEPS = {
    "baseline": Recipe(),
    "augmentation": Recipe(augment=True, epochs=10),
    "regularisation": Recipe(**_REGULARISED),
}

#: The chapter's live budget: Optuna trials, ensemble members, test-time augmentation draws.
LIVE = {"trials": 4, "members": 3, "tta": 4}

#: What :func:`tune` searches, on top of the ``regularisation`` recipe.
SEARCH_SPACE = {
    "conv_blocks": (1, 2),
    "width": (16, 32),
    "dropout": (0.0, 0.5),
    "learning_rate": (5e-4, 5e-3),   # log-uniform
    "weight_decay": (1e-5, 1e-2),    # log-uniform
}


# --- training ----------------------------------------------------------------------------------

def _val_loss_and_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    logits = _logits(model, x)
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


def _logits(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return torch.cat([model(chunk) for chunk in x.split(batch_size)])


def train(recipe: Recipe, x: torch.Tensor, y: torch.Tensor, x_val: torch.Tensor | None = None,
          y_val: torch.Tensor | None = None, *, seed: int = 0, on_epoch_end: Callable | None = None):
    r"""Train ``recipe.model()`` on ``(x, y)``, watching ``(x_val, y_val)`` after every epoch.

    :func:`dlnotes.seed_everything` ``(seed)`` first (the weights), then each epoch a permutation
    and the augmentations from one ``torch.Generator`` seeded with ``seed``. Each step: forward,
    mean cross-entropy, backward, an AdamW step

    .. math::

        \theta \leftarrow \theta - \alpha_t \left( \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon} + \lambda \theta \right),

    and the schedule's :math:`\alpha_t` for the next step.

    Without validation data (``x_val=None``, allowed only when ``recipe.patience`` is ``None``)
    every epoch is run and nothing is watched: the learning curve trains on every image it has.

    Returns:
        ``(model, history)``: the model in evaluation mode (the best epoch's weights under early
        stopping) and ``{"val_loss", "val_accuracy"}`` lists per epoch run, plus ``"best_epoch"``
        (1-based) and ``"seconds"`` (training wall time).
    """
    if not isinstance(recipe, Recipe):
        raise TypeError(f"`recipe` must be a Recipe. Received: recipe of type {type(recipe).__name__}")
    x = _check_images("x", x)
    y = _check_labels("y", y, len(x))
    watch = x_val is not None
    if watch:
        x_val = _check_images("x_val", x_val)
        y_val = _check_labels("y_val", y_val, len(x_val))
    elif recipe.patience is not None:
        raise ValueError(f"Early stopping needs validation data: pass `x_val` and `y_val` or use a recipe with "
                         f"patience=None. Received: x_val=None with patience={recipe.patience}")
    seed_everything(seed)
    model = recipe.model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
    steps_per_epoch = math.ceil(len(x) / recipe.batch_size)
    scheduler = (torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.learning_rate,
                                                     total_steps=recipe.epochs * steps_per_epoch)
                 if recipe.schedule == "onecycle" else None)
    generator = torch.Generator().manual_seed(seed)
    history = {"val_loss": [], "val_accuracy": []}
    best, best_loss, waited = None, math.inf, 0
    start = time.perf_counter()
    for epoch in range(recipe.epochs):
        model.train()
        for batch in torch.randperm(len(x), generator=generator).split(recipe.batch_size):
            inputs = random_affine(x[batch], generator) if recipe.augment else x[batch]
            loss = F.cross_entropy(model(inputs), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
        if not watch:
            continue
        val_loss, val_accuracy = _val_loss_and_accuracy(model, x_val, y_val)
        history["val_loss"].append(val_loss)
        history["val_accuracy"].append(val_accuracy)
        if on_epoch_end is not None:
            on_epoch_end(epoch, val_loss, val_accuracy)
        if val_loss < best_loss:
            best_loss, waited = val_loss, 0
            best = {k: v.clone() for k, v in model.state_dict().items()}
        elif recipe.patience is not None:
            waited += 1
            if waited >= recipe.patience:
                break
    if recipe.patience is not None:
        model.load_state_dict(best)
    history["best_epoch"] = (int(np.argmin(history["val_loss"])) + 1 if recipe.patience is not None
                             else recipe.epochs)
    history["seconds"] = time.perf_counter() - start
    return model.eval(), history


def predict_proba(model: nn.Module, x: torch.Tensor, *, tta: int = 0, seed: int = 0) -> torch.Tensor:
    r"""Softmax probabilities ``(n, 10)``; with ``tta = k``, averaged over the image and ``k`` random augmentations.

    Test-time augmentation: :math:`\bar p(x) = \frac{1}{k + 1} \big(p(x) + \sum_{j=1}^{k} p(a_j(x))\big)`
    with :math:`a_j` drawn by :func:`random_affine` from a generator seeded with ``seed``.
    """
    x = _check_images("x", x)
    if isinstance(tta, bool) or not isinstance(tta, int) or tta < 0:
        raise ValueError(f"`tta` must be a non-negative integer. Received: tta={tta!r}")
    generator = torch.Generator().manual_seed(seed)
    total = torch.softmax(_logits(model, x), dim=1)
    for _ in range(tta):
        total += torch.softmax(_logits(model, random_affine(x, generator)), dim=1)
    return total / (tta + 1)


def ensemble_proba(probabilities) -> torch.Tensor:
    r"""The ensemble's prediction: the mean of its members' probabilities, :math:`\frac{1}{M}\sum_m p_m(x)`."""
    probabilities = list(probabilities)
    if not probabilities or any(not isinstance(p, torch.Tensor) or p.shape != probabilities[0].shape
                                for p in probabilities):
        shapes = [tuple(getattr(p, "shape", ())) for p in probabilities]
        raise ValueError(f"`probabilities` must be a non-empty list of tensors of one shape. Received: shapes {shapes}")
    return torch.stack(probabilities).mean(dim=0)


def accuracy(probabilities: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of rows whose arg-max is the label."""
    y = _check_labels("y", y, len(probabilities))
    return (probabilities.argmax(dim=1) == y).float().mean().item()


# --- tuning ------------------------------------------------------------------------------------

def tune(x: torch.Tensor, y: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor, *, trials: int, epochs: int = 3,
         subset: int = 1500, seed: int = 0):
    """Search :data:`SEARCH_SPACE` with Optuna's TPE sampler for ``trials`` trials; score: validation accuracy.

    Each trial trains the ``regularisation`` recipe with the trial's settings for ``epochs``
    epochs on the first ``subset`` training images (a cheap proxy for the full run) and is scored
    on ``(x_val, y_val)``; the test images are never seen. The first trial is the
    ``regularisation`` recipe's own settings (``study.enqueue_trial``), so the search keeps the
    hand-set recipe unless a trial beats it; TPE draws the next trials at random (up to 10 with
    Optuna's default) before it models which settings score well.

    Returns:
        ``(recipe, study)``: the ``regularisation`` recipe with the best trial's settings (and the
        full number of epochs), and the ``optuna.Study`` (``study.trials_dataframe()`` lists them).
    """
    with warnings.catch_warnings():   # optuna imports tqdm, which warns in a notebook without ipywidgets
        warnings.filterwarnings("ignore", message="IProgress not found")
        import optuna

    trials = check_positive_int("trials", trials)
    epochs = check_positive_int("epochs", epochs)
    subset = check_positive_int("subset", subset)
    x, x_val = _check_images("x", x), _check_images("x_val", x_val)
    y, y_val = _check_labels("y", y, len(x)), _check_labels("y_val", y_val, len(x_val))
    base = STEPS["regularisation"]

    def settings(trial) -> dict:
        space = SEARCH_SPACE
        return {"conv_blocks": trial.suggest_categorical("conv_blocks", list(space["conv_blocks"])),
                "width": trial.suggest_categorical("width", list(space["width"])),
                "dropout": trial.suggest_float("dropout", *space["dropout"]),
                "learning_rate": trial.suggest_float("learning_rate", *space["learning_rate"], log=True),
                "weight_decay": trial.suggest_float("weight_decay", *space["weight_decay"], log=True)}

    def objective(trial) -> float:
        recipe = dataclasses.replace(base, epochs=epochs, patience=None, **settings(trial))
        _, history = train(recipe, x[:subset], y[:subset], x_val, y_val, seed=seed + trial.number)
        return history["val_accuracy"][-1]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.enqueue_trial({name: getattr(base, name) for name in SEARCH_SPACE})
    study.optimize(objective, n_trials=trials)
    return dataclasses.replace(base, **study.best_params), study


# --- the ablation and the learning curve ---------------------------------------------------------

@dataclasses.dataclass
class Ablation:
    """What :func:`run_ablation` measured.

    Attributes:
        rows: step name -> ``{"val_accuracy", "test_accuracy", "seconds"}``, in the order the
            steps were added; ``seconds`` is all the training the step needs (the tuner's
            trials included from ``tuning`` on). The ``final`` rows train on the validation
            images too, so their ``val_accuracy`` is ``None``.
        recipe: the tuned recipe.
        study: the tuner's ``optuna.Study``.
        members: the ensemble's models; the first (seed ``seed``) is the ``tuning`` row's.
        test_proba: step name -> test probabilities ``(n_test, 10)``.
    """

    rows: dict
    recipe: Recipe
    study: object
    members: list
    test_proba: dict


def run_ablation(fit, val, test, *, seed: int = 0, trials: int = LIVE["trials"], members: int = LIVE["members"],
                 tta: int = LIVE["tta"], final: bool = False, on_step: Callable | None = None) -> Ablation:
    """Add one step at a time and measure each: the rows of the chapter's table.

    ``fit``, ``val`` and ``test`` are ``(images, labels)`` pairs. The three :data:`STEPS` train
    with ``seed``; :func:`tune` searches with ``trials`` trials scored on ``val``; the tuned
    recipe trains with ``seed`` (the ``tuning`` row) and with ``seed + 1, ..., seed + members - 1``
    for the ``ensemble`` row (the mean of the members' probabilities); ``tta`` is the tuned model
    with ``tta`` augmented copies of each image. The test images are only predicted, never
    used for a decision. ``on_step(name, row)`` is called after each row.

    With ``final=True`` (the script, not the chapter's live run), the decisions made, the tuned
    recipe is trained once more on ``fit`` and ``val`` together, every epoch of its schedule
    (no early stopping: nothing is left to stop on), with the same seeds: the ``final`` row
    (seed ``seed``) and the ``final_ensemble`` row (all ``members`` seeds).
    """
    members = check_positive_int("members", members)
    if not isinstance(final, bool):
        raise TypeError(f"`final` must be a bool. Received: final={final!r}")
    (x, y), (x_val, y_val), (x_test, y_test) = fit, val, test
    rows, test_proba = {}, {}

    def record(name, val_p, test_p, seconds):
        rows[name] = {"val_accuracy": None if val_p is None else accuracy(val_p, y_val),
                      "test_accuracy": accuracy(test_p, y_test), "seconds": seconds}
        test_proba[name] = test_p
        if on_step is not None:
            on_step(name, rows[name])

    for name, recipe in STEPS.items():
        model, history = train(recipe, x, y, x_val, y_val, seed=seed)
        record(name, predict_proba(model, x_val), predict_proba(model, x_test), history["seconds"])

    start = time.perf_counter()
    tuned, study = tune(x, y, x_val, y_val, trials=trials, seed=seed)
    search = time.perf_counter() - start
    models, seconds = [], search
    for member in range(members):
        model, history = train(tuned, x, y, x_val, y_val, seed=seed + member)
        models.append(model)
        seconds += history["seconds"]
        if member == 0:
            record("tuning", predict_proba(model, x_val), predict_proba(model, x_test), seconds)
    record("ensemble", ensemble_proba(predict_proba(m, x_val) for m in models),
           ensemble_proba(predict_proba(m, x_test) for m in models), seconds)
    record("tta", predict_proba(models[0], x_val, tta=tta, seed=seed),
           predict_proba(models[0], x_test, tta=tta, seed=seed), rows["tuning"]["seconds"])
    if final:
        x_all, y_all = torch.cat([x, x_val]), torch.cat([y, y_val])
        every_epoch = dataclasses.replace(tuned, patience=None)
        probabilities, seconds = [], search
        for member in range(members):
            model, history = train(every_epoch, x_all, y_all, seed=seed + member)
            probabilities.append(predict_proba(model, x_test))
            seconds += history["seconds"]
            if member == 0:
                record("final", None, probabilities[0], seconds)
        record("final_ensemble", None, ensemble_proba(probabilities), seconds)
    return Ablation(rows, tuned, study, models, test_proba)


def learning_curve(recipes: dict, x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor, *,
                   sizes=(250, 500, 1000, 2000, 4000), seed: int = 0) -> dict:
    """Test accuracy of each recipe trained on the first ``n`` of ``(x, y)``, for each ``n`` in ``sizes``.

    The images are put in one order (a generator seeded with ``seed``), so every smaller set is
    part of every larger one. Each run has the same number of optimiser steps as ``recipe`` on
    all of ``x`` (the epochs grow as the set shrinks), so a smaller set is not also a shorter
    training; early stopping is off, since there is no validation split to stop on.

    Returns:
        ``{name: [test accuracy per size]}``.
    """
    x = _check_images("x", x)
    y = _check_labels("y", y, len(x))
    sizes = [check_positive_int("sizes", n) for n in sizes]
    if max(sizes) > len(x):
        raise ValueError(f"`sizes` must not exceed the {len(x)} training images. Received: sizes={sizes}")
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    curves = {}
    for name, recipe in recipes.items():
        curves[name] = []
        for n in sizes:
            keep = order[:n]
            epochs = max(recipe.epochs, round(recipe.epochs * len(x) / n))
            model, _ = train(dataclasses.replace(recipe, epochs=epochs, patience=None), x[keep], y[keep], seed=seed)
            curves[name].append(accuracy(predict_proba(model, x_test), y_test))
    return curves
