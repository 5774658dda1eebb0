"""dlnotes.scratch.optim: every optimizer and schedule against torch.optim step for step, and against Keras.

The problem: an ill-conditioned least-squares fit with two parameter arrays, a matrix ``W``
and a bias ``b``, loss = mean((X W + b - Y)^2). Our side uses the analytic gradient in
NumPy; torch uses autograd on its own copy of the parameters. Each side follows its own
trajectory for 25 steps and the parameters are compared after **every** step.
Tolerances: float64 versus torch rtol=1e-10, atol=1e-12; float32 versus Keras rtol=1e-5, atol=1e-5.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlnotes.scratch import optim
from tests.helpers import assert_close

STEPS = 25
RTOL, ATOL = 1e-10, 1e-12


def make_problem(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((20, 4)) * np.array([3.0, 1.0, 0.3, 0.1])  # condition number ~ 1e3
    Y = rng.standard_normal((20, 3))
    W0 = rng.standard_normal((4, 3))
    b0 = rng.standard_normal(3)
    return [a.astype(dtype) for a in (X, Y, W0, b0)]


def lsq_grads(X, Y, W, b):
    r = 2.0 * (X @ W + b - Y) / Y.size
    return [X.T @ r, r.sum(axis=0)]


def run_against_torch(ours_cls, torch_cls, kwargs, steps=STEPS, schedule=None):
    """Run both optimizers side by side; compare the parameters after every step."""
    X, Y, W0, b0 = make_problem()
    W, b = W0.copy(), b0.copy()
    ours = ours_cls([W, b], **kwargs)
    tW, tb = torch.tensor(W0, requires_grad=True), torch.tensor(b0, requires_grad=True)
    theirs = torch_cls([tW, tb], **kwargs)
    scheds = None
    if schedule is not None:
        scheds = schedule(ours), schedule(theirs)
    tX, tY = torch.tensor(X), torch.tensor(Y)
    for step in range(1, steps + 1):
        ours.step(lsq_grads(X, Y, W, b))
        theirs.zero_grad()
        torch.nn.functional.mse_loss(tX @ tW + tb, tY).backward()
        theirs.step()
        if scheds is not None:
            scheds[0].step()
            scheds[1].step()
        assert_close(f"W after step {step}", W, tW, rtol=RTOL, atol=ATOL)
        assert_close(f"b after step {step}", b, tb, rtol=RTOL, atol=ATOL)
    assert not np.allclose(W, W0, rtol=1e-3), "the parameters should have moved"


CONFIGS = [
    (optim.SGD, torch.optim.SGD, dict(lr=0.05)),
    (optim.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9)),
    (optim.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, dampening=0.3)),
    (optim.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True)),
    (optim.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.5, weight_decay=0.1)),
    (optim.Adagrad, torch.optim.Adagrad, dict()),
    (optim.Adagrad, torch.optim.Adagrad, dict(lr=0.1, lr_decay=0.05, weight_decay=0.1)),
    (optim.Adagrad, torch.optim.Adagrad, dict(lr=0.1, initial_accumulator_value=0.5, eps=1e-3)),
    (optim.RMSprop, torch.optim.RMSprop, dict()),
    (optim.RMSprop, torch.optim.RMSprop, dict(lr=0.01, alpha=0.9, centered=True)),
    (optim.RMSprop, torch.optim.RMSprop, dict(lr=0.01, momentum=0.9, weight_decay=0.1)),
    (optim.RMSprop, torch.optim.RMSprop, dict(lr=0.01, momentum=0.5, centered=True, eps=1e-3)),
    (optim.Adam, torch.optim.Adam, dict()),
    (optim.Adam, torch.optim.Adam, dict(lr=0.05, betas=(0.5, 0.9), eps=1e-3)),
    (optim.Adam, torch.optim.Adam, dict(lr=0.05, weight_decay=0.1)),
    (optim.Adam, torch.optim.Adam, dict(lr=0.05, amsgrad=True)),
    (optim.AdamW, torch.optim.AdamW, dict()),
    (optim.AdamW, torch.optim.AdamW, dict(lr=0.05, weight_decay=0.5)),
    (optim.AdamW, torch.optim.AdamW, dict(lr=0.05, weight_decay=0.1, amsgrad=True, betas=(0.8, 0.99))),
]


@pytest.mark.parametrize("ours_cls, torch_cls, kwargs", CONFIGS,
                         ids=[f"{c[0].__name__}-{c[2]}" for c in CONFIGS])
def test_trajectory_matches_torch(ours_cls, torch_cls, kwargs):
    run_against_torch(ours_cls, torch_cls, kwargs)


@given(lr=st.floats(1e-3, 0.2), momentum=st.floats(0.0, 0.99), dampening=st.floats(0.0, 0.9),
       weight_decay=st.floats(0.0, 0.5), nesterov=st.booleans())
@settings(max_examples=25, deadline=None)
def test_sgd_matches_torch_for_any_hyperparameters(lr, momentum, dampening, weight_decay, nesterov):
    if nesterov:
        momentum, dampening = max(momentum, 0.1), 0.0
    run_against_torch(optim.SGD, torch.optim.SGD, dict(lr=lr, momentum=momentum, dampening=dampening,
                                                       weight_decay=weight_decay, nesterov=nesterov))


@given(lr=st.floats(1e-3, 0.2), beta1=st.floats(0.0, 0.99), beta2=st.floats(0.5, 0.9999),
       eps=st.sampled_from([1e-8, 1e-4, 0.1]), weight_decay=st.floats(0.0, 0.5), amsgrad=st.booleans(),
       decoupled=st.booleans())
@settings(max_examples=25, deadline=None)
def test_adam_and_adamw_match_torch_for_any_hyperparameters(lr, beta1, beta2, eps, weight_decay, amsgrad,
                                                            decoupled):
    ours_cls, torch_cls = (optim.AdamW, torch.optim.AdamW) if decoupled else (optim.Adam, torch.optim.Adam)
    run_against_torch(ours_cls, torch_cls, dict(lr=lr, betas=(beta1, beta2), eps=eps,
                                                weight_decay=weight_decay, amsgrad=amsgrad))


def test_defaults_match_torch():
    p = [np.zeros(2)]
    cases = [(optim.Adagrad(p), torch.optim.Adagrad, ("lr", "lr_decay", "weight_decay",
                                                      "initial_accumulator_value", "eps")),
             (optim.RMSprop(p), torch.optim.RMSprop, ("lr", "alpha", "eps", "weight_decay", "momentum",
                                                      "centered")),
             (optim.Adam(p), torch.optim.Adam, ("lr", "betas", "eps", "weight_decay", "amsgrad")),
             (optim.AdamW(p), torch.optim.AdamW, ("lr", "betas", "eps", "weight_decay", "amsgrad")),
             (optim.SGD(p, lr=0.1), torch.optim.SGD, ("momentum", "dampening", "nesterov", "weight_decay"))]
    for ours, torch_cls, names in cases:
        lr = {"lr": 0.1} if torch_cls is torch.optim.SGD else {}  # SGD has no default lr
        defaults = torch_cls([torch.zeros(2, requires_grad=True)], **lr).defaults
        for name in names:
            assert getattr(ours, name) == pytest.approx(defaults[name]), f"{type(ours).__name__}.{name}"


# --- schedules ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda o: (optim.StepLR(o, step_size=7, gamma=0.5) if isinstance(o, optim.Optimizer)
               else torch.optim.lr_scheduler.StepLR(o, step_size=7, gamma=0.5)),
    lambda o: (optim.CosineAnnealingLR(o, T_max=12, eta_min=0.01) if isinstance(o, optim.Optimizer)
               else torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=12, eta_min=0.01)),
], ids=["StepLR", "CosineAnnealingLR"])
def test_schedule_matches_torch_over_40_epochs(make):
    ours = make(optim.SGD([np.zeros(1)], lr=0.3))
    theirs = make(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.3))
    assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr()[0], rel=1e-12)
    lrs = []
    for epoch in range(1, 41):  # 40 epochs: more than three cosine half-periods, five StepLR decays
        theirs.optimizer.step()
        ours.step()
        theirs.step()
        lrs.append(ours.get_last_lr())
        assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr()[0], rel=1e-12, abs=1e-15), epoch
    assert len(set(np.round(lrs, 12))) > 5, "the schedule should change the lr"


def test_schedule_drives_the_optimizer_like_torch():
    run_against_torch(optim.SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9),
                      schedule=lambda o: (optim.CosineAnnealingLR(o, T_max=10)
                                          if isinstance(o, optim.Optimizer)
                                          else torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10)))
    run_against_torch(optim.Adam, torch.optim.Adam, dict(lr=0.05),
                      schedule=lambda o: (optim.StepLR(o, step_size=5, gamma=0.3)
                                          if isinstance(o, optim.Optimizer)
                                          else torch.optim.lr_scheduler.StepLR(o, step_size=5, gamma=0.3)))


def test_cosine_schedule_closed_form_values():
    opt = optim.SGD([np.zeros(1)], lr=1.0)
    sched = optim.CosineAnnealingLR(opt, T_max=4, eta_min=0.2)
    got = [sched.get_last_lr()]
    for _ in range(8):
        sched.step()
        got.append(sched.get_last_lr())
    # halfway down at T_max/2, eta_min at T_max, back to the start at 2 T_max
    np.testing.assert_allclose(got[::2], [1.0, 0.6, 0.2, 0.6, 1.0], rtol=1e-12)


# --- Keras (float32), where the update rules coincide -----------------------------------------------

# keras's convert_to_numpy calls np.array(torch_tensor), which NumPy 2 warns about (keras, not us).
KERAS_NUMPY_WARNING = "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"


def keras_trajectory(keras_opt, X, Y, W0, b0):
    import keras
    variables = [keras.Variable(W0), keras.Variable(b0)]
    out = []
    for _ in range(STEPS):
        W, b = (keras.ops.convert_to_numpy(v) for v in variables)
        grads = [keras.ops.convert_to_tensor(g) for g in lsq_grads(X, Y, W, b)]
        keras_opt.apply_gradients(zip(grads, variables))
        out.append([keras.ops.convert_to_numpy(v).copy() for v in variables])
    return out


# Tiny eps on both sides where Keras places it differently (inside the square root, or
# before the bias correction): with |g| ~ 1 the placement is far below float32 resolution.
KERAS_CONFIGS = [
    (optim.SGD, dict(lr=0.05), "SGD", dict(learning_rate=0.05)),
    (optim.SGD, dict(lr=0.05, momentum=0.9), "SGD", dict(learning_rate=0.05, momentum=0.9)),
    (optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True), "SGD",
     dict(learning_rate=0.05, momentum=0.9, nesterov=True)),
    (optim.Adam, dict(lr=0.05, eps=1e-12), "Adam", dict(learning_rate=0.05, epsilon=1e-12)),
    (optim.Adam, dict(lr=0.05, eps=1e-12, amsgrad=True), "Adam",
     dict(learning_rate=0.05, epsilon=1e-12, amsgrad=True)),
    (optim.AdamW, dict(lr=0.05, eps=1e-12, weight_decay=0.2), "AdamW",
     dict(learning_rate=0.05, epsilon=1e-12, weight_decay=0.2)),
    (optim.RMSprop, dict(lr=0.01, alpha=0.9, eps=1e-12, momentum=0.5, centered=True), "RMSprop",
     dict(learning_rate=0.01, rho=0.9, epsilon=1e-12, momentum=0.5, centered=True)),
    (optim.Adagrad, dict(lr=0.1, initial_accumulator_value=0.1, eps=1e-12), "Adagrad",
     dict(learning_rate=0.1, initial_accumulator_value=0.1, epsilon=1e-12)),
]


@pytest.mark.filterwarnings(KERAS_NUMPY_WARNING)
@pytest.mark.parametrize("ours_cls, ours_kwargs, keras_name, keras_kwargs", KERAS_CONFIGS,
                         ids=[f"{c[2]}-{c[3]}" for c in KERAS_CONFIGS])
def test_trajectory_matches_keras_float32(ours_cls, ours_kwargs, keras_name, keras_kwargs):
    import keras
    X, Y, W0, b0 = make_problem(np.float32)
    expected = keras_trajectory(getattr(keras.optimizers, keras_name)(**keras_kwargs), X, Y, W0, b0)
    W, b = W0.copy(), b0.copy()
    ours = ours_cls([W, b], **ours_kwargs)
    for step, (kW, kb) in enumerate(expected, 1):
        ours.step(lsq_grads(X, Y, W, b))
        assert_close(f"W after step {step}", W, kW, rtol=1e-5, atol=1e-5)
        assert_close(f"b after step {step}", b, kb, rtol=1e-5, atol=1e-5)


@pytest.mark.filterwarnings(KERAS_NUMPY_WARNING)
def test_keras_adam_default_epsilon_is_placed_differently():
    """Keras's eps-hat: with a large eps the two Adams part ways (so the tiny eps above matters)."""
    import keras
    X, Y, W0, b0 = make_problem(np.float32)
    kW, _ = keras_trajectory(keras.optimizers.Adam(learning_rate=0.05, epsilon=0.5), X, Y, W0, b0)[-1]
    W, b = W0.copy(), b0.copy()
    ours = optim.Adam([W, b], lr=0.05, eps=0.5)
    for _ in range(STEPS):
        ours.step(lsq_grads(X, Y, W, b))
    assert not np.allclose(W, kW, rtol=1e-3, atol=1e-4)


# --- behaviour ---------------------------------------------------------------------------------------

def test_updates_in_place_and_counts_steps():
    W = np.ones((2, 2))
    opt = optim.SGD([W], lr=0.5)
    opt.step([np.full((2, 2), 2.0)])
    np.testing.assert_array_equal(W, np.zeros((2, 2)))
    assert opt.t == 1
    assert opt.params[0] is W


def test_float32_parameters_stay_float32():
    W = np.ones(3, dtype=np.float32)
    opt = optim.Adam([W], lr=0.1)
    opt.step([np.ones(3)])  # float64 gradient is cast to the parameter's dtype
    assert W.dtype == np.float32
    np.testing.assert_allclose(W, 0.9, rtol=1e-6)  # Adam's first step moves each coordinate by ~lr


# --- bad input ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [optim.SGD, optim.Adagrad, optim.RMSprop, optim.Adam, optim.AdamW])
def test_negative_lr_rejected(cls):
    with pytest.raises(ValueError, match=r"`lr` must be in \[0.0, inf\). Received: lr=-0.1"):
        cls([np.zeros(2)], lr=-0.1)


@pytest.mark.parametrize("cls, kwargs, error, match", [
    (optim.SGD, dict(lr="fast"), TypeError, r"`lr` must be a finite real number. Received: lr='fast'"),
    (optim.SGD, dict(lr=0.1, momentum=-0.5), ValueError, r"Received: momentum=-0.5"),
    (optim.SGD, dict(lr=0.1, weight_decay=-1), ValueError, r"Received: weight_decay=-1"),
    (optim.SGD, dict(lr=0.1, nesterov=True), ValueError, r"nesterov=True.*momentum=0.0"),
    (optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError, r"dampening=0.1"),
    (optim.SGD, dict(lr=0.1, nesterov="yes"), TypeError, r"Received: nesterov='yes'"),
    (optim.Adagrad, dict(lr_decay=-0.1), ValueError, r"Received: lr_decay=-0.1"),
    (optim.Adagrad, dict(initial_accumulator_value=-1.0), ValueError, r"initial_accumulator_value=-1.0"),
    (optim.Adagrad, dict(eps=-1e-10), ValueError, r"Received: eps=-1e-10"),
    (optim.RMSprop, dict(alpha=-0.9), ValueError, r"Received: alpha=-0.9"),
    (optim.RMSprop, dict(centered=1), TypeError, r"Received: centered=1"),
    (optim.RMSprop, dict(momentum=float("nan")), TypeError, r"Received: momentum=nan"),
    (optim.Adam, dict(betas=(1.0, 0.999)), ValueError, r"`betas\[0\]` must be in \[0.0, 1.0\). Received: betas\[0\]=1.0"),
    (optim.Adam, dict(betas=(0.9, -0.1)), ValueError, r"Received: betas\[1\]=-0.1"),
    (optim.Adam, dict(betas=0.9), ValueError, r"Received: betas=0.9"),
    (optim.Adam, dict(amsgrad="no"), TypeError, r"Received: amsgrad='no'"),
    (optim.AdamW, dict(weight_decay=-0.01), ValueError, r"Received: weight_decay=-0.01"),
    (optim.AdamW, dict(betas=(0.9, 1.5)), ValueError, r"Received: betas\[1\]=1.5"),
])
def test_bad_hyperparameters_rejected(cls, kwargs, error, match):
    with pytest.raises(error, match=match):
        cls([np.zeros(2)], **kwargs)


@pytest.mark.parametrize("params, match", [
    ([], r"Received: params=\[\]"),
    (np.zeros(3), r"must be a non-empty list"),
    ([np.zeros(3, dtype=np.int64)], r"Received: params\[0\] of type int64"),
    ([np.zeros(2), [1.0, 2.0]], r"Received: params\[1\] of type list"),
])
def test_bad_params_rejected(params, match):
    with pytest.raises(TypeError, match=match):
        optim.SGD(params, lr=0.1)


def test_bad_grads_rejected():
    opt = optim.Adam([np.zeros((2, 3)), np.zeros(3)])
    with pytest.raises(ValueError, match=r"list of 2 arrays.*Received: len\(grads\)=1"):
        opt.step([np.zeros((2, 3))])
    with pytest.raises(ValueError, match=r"Received: len\(grads\)=ndarray"):
        opt.step(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"`grads\[1\]` must have the shape of params\[1\] \(3,\). "
                                         r"Received: grads\[1\].shape=\(1, 3\)"):
        opt.step([np.zeros((2, 3)), np.zeros((1, 3))])
    assert opt.t == 0, "a rejected step must not count"


@pytest.mark.parametrize("make, error, match", [
    (lambda o: optim.StepLR(o, step_size=0), ValueError, r"Received: step_size=0"),
    (lambda o: optim.StepLR(o, step_size=2.5), ValueError, r"Received: step_size=2.5"),
    (lambda o: optim.StepLR(o, step_size=2, gamma=-0.1), ValueError, r"Received: gamma=-0.1"),
    (lambda o: optim.CosineAnnealingLR(o, T_max=0), ValueError, r"Received: T_max=0"),
    (lambda o: optim.CosineAnnealingLR(o, T_max=5, eta_min=-1.0), ValueError, r"Received: eta_min=-1.0"),
    (lambda o: optim.StepLR(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1), step_size=2),
     TypeError, r"Received: optimizer of type SGD"),
])
def test_bad_schedule_arguments_rejected(make, error, match):
    with pytest.raises(error, match=match):
        make(optim.SGD([np.zeros(1)], lr=0.1))
