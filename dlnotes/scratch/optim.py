r"""Optimizers and learning-rate schedules in NumPy, step for step like ``torch.optim``.

Taught in: *Optimization algorithms* (``book/math/optimizers.ipynb``).

Symbols follow the course: the learning rate is :math:`\alpha` (torch's and our argument
``lr``), as in :math:`\theta_t = \theta_{t-1} - \alpha \nabla J(\theta_{t-1})`; RMSprop's
smoothing constant, which torch calls ``alpha``, is written :math:`\rho` (Keras's ``rho``).

Every optimizer holds a list of NumPy arrays (the parameters :math:`\theta`) and updates
them **in place** when given the matching list of gradients :math:`g_t = \nabla J(\theta_{t-1})`::

    opt = Adam([W, b], lr=1e-3)
    for t in range(steps):
        opt.step([dW, db])          # same order and shapes as the parameters

Defaults, the order of the operations and the optional extras (weight decay, momentum,
Nesterov, centering, AMSGrad) follow the ``torch.optim`` documentation and source; the
update equations are in each class's docstring. One optimizer is one torch *parameter
group*: one ``lr`` shared by all its arrays, stored in ``opt.lr`` where a schedule can change it.
"""

from __future__ import annotations

import math

import numpy as np
from dlnotes._checks import check_positive_int, check_real

__all__ = ["Optimizer", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "StepLR", "CosineAnnealingLR"]


# --- argument checks -------------------------------------------------------------------------------

def _check_params(params) -> list[np.ndarray]:
    if not isinstance(params, (list, tuple)) or len(params) == 0:
        raise TypeError(f"`params` must be a non-empty list of NumPy arrays. Received: params={params!r}")
    for i, p in enumerate(params):
        if not isinstance(p, np.ndarray) or not np.issubdtype(p.dtype, np.floating):
            got = p.dtype if isinstance(p, np.ndarray) else type(p).__name__
            raise TypeError(f"`params[{i}]` must be a floating-point NumPy array (updated in place). "
                            f"Received: params[{i}] of type {got}")
    return list(params)


def _check_bool(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be a bool. Received: {name}={value!r}")
    return bool(value)


# --- optimizers ------------------------------------------------------------------------------------

class Optimizer:
    """Base class: holds the parameters, the learning rate and one state dict per parameter.

    Subclasses implement :meth:`update`, the rule for one parameter array.

    Args:
        params: list of floating-point NumPy arrays, updated in place by :meth:`step`.
        lr: learning rate :math:`\\alpha \\ge 0`.
    """

    def __init__(self, params, lr: float):
        self.params = _check_params(params)
        self.lr = check_real("lr", lr, 0.0)
        self.state: list[dict] = [{} for _ in self.params]
        self.t = 0  # number of steps taken

    def step(self, grads) -> None:
        """Apply one update to every parameter, given gradients of the same count and shapes.

        Raises:
            ValueError: ``grads`` has the wrong length or a gradient has the wrong shape.
        """
        if not isinstance(grads, (list, tuple)) or len(grads) != len(self.params):
            got = len(grads) if isinstance(grads, (list, tuple)) else type(grads).__name__
            raise ValueError(f"`grads` must be a list of {len(self.params)} arrays, one per parameter. "
                             f"Received: len(grads)={got}")
        grads = [np.asarray(g, dtype=p.dtype) for g, p in zip(grads, self.params)]
        for i, (p, g) in enumerate(zip(self.params, grads)):
            if g.shape != p.shape:
                raise ValueError(f"`grads[{i}]` must have the shape of params[{i}] {p.shape}. "
                                 f"Received: grads[{i}].shape={g.shape}")
        self.t += 1
        for p, g, state in zip(self.params, grads, self.state):
            self.update(p, g, state)

    def update(self, p: np.ndarray, g: np.ndarray, state: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class SGD(Optimizer):
    r"""Stochastic gradient descent with optional momentum, like ``torch.optim.SGD``.

    .. math::

        g &\leftarrow g_t + \lambda \theta_{t-1} \quad \text{(weight decay } \lambda\text{)} \\
        b_t &\leftarrow \begin{cases} g & t = 1 \\ \mu b_{t-1} + (1 - \tau) g & t > 1 \end{cases}
             \quad \text{(momentum } \mu\text{, dampening } \tau\text{)} \\
        g &\leftarrow g + \mu b_t \text{ if nesterov, else } b_t \\
        \theta_t &\leftarrow \theta_{t-1} - \alpha g

    With ``momentum=0`` it is plain gradient descent :math:`\theta_t = \theta_{t-1} - \alpha g_t`.
    Momentum is Polyak's heavy ball (1964); ``nesterov=True`` is Nesterov's accelerated
    gradient (1983) in the form torch uses. Keras's ``SGD`` keeps :math:`v = -\alpha b`; with a
    constant learning rate and no dampening the two give the same trajectory.

    Args:
        params: list of floating-point arrays.
        lr: :math:`\alpha \ge 0` (torch has no default; neither do we).
        momentum: :math:`\mu \ge 0`. Default 0.
        dampening: :math:`\tau`. Default 0.
        nesterov: Nesterov momentum; needs ``momentum > 0`` and ``dampening == 0``. Default False.
        weight_decay: L2 penalty :math:`\lambda \ge 0` added to the gradient. Default 0.
    """

    def __init__(self, params, lr: float, momentum: float = 0.0, dampening: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0):
        super().__init__(params, lr)
        self.momentum = check_real("momentum", momentum, 0.0)
        self.dampening = check_real("dampening", dampening)
        self.weight_decay = check_real("weight_decay", weight_decay, 0.0)
        nesterov = _check_bool("nesterov", nesterov)
        if nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("`nesterov=True` requires momentum > 0 and dampening = 0. "
                             f"Received: momentum={momentum!r}, dampening={dampening!r}")
        self.nesterov = nesterov

    def update(self, p, g, state):
        if self.weight_decay != 0:
            g = g + self.weight_decay * p
        if self.momentum != 0:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = g.copy()
            else:
                state["momentum_buffer"] = self.momentum * state["momentum_buffer"] + (1 - self.dampening) * g
            buf = state["momentum_buffer"]
            g = g + self.momentum * buf if self.nesterov else buf
        p -= self.lr * g


class Adagrad(Optimizer):
    r"""Adagrad: per-coordinate steps shrinking with the sum of squared gradients, like ``torch.optim.Adagrad``.

    .. math::

        \tilde\alpha &= \alpha / (1 + (t - 1)\delta) \quad \text{(lr decay } \delta\text{)} \\
        g &\leftarrow g_t + \lambda \theta_{t-1} \\
        s_t &\leftarrow s_{t-1} + g^2, \qquad s_0 = \text{initial\_accumulator\_value} \\
        \theta_t &\leftarrow \theta_{t-1} - \tilde\alpha \, g / (\sqrt{s_t} + \epsilon)

    Keras's ``Adagrad`` puts :math:`\epsilon` inside the square root and starts
    :math:`s_0 = 0.1`; the rules coincide when :math:`\epsilon` is negligible.
    Reference: Duchi, Hazan & Singer (2011), *Adaptive subgradient methods*.

    Args:
        params: list of floating-point arrays.
        lr: :math:`\alpha`. Default 1e-2.
        lr_decay: :math:`\delta \ge 0`. Default 0.
        weight_decay: :math:`\lambda \ge 0`. Default 0.
        initial_accumulator_value: :math:`s_0 \ge 0`. Default 0.
        eps: :math:`\epsilon \ge 0`. Default 1e-10.
    """

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10):
        super().__init__(params, lr)
        self.lr_decay = check_real("lr_decay", lr_decay, 0.0)
        self.weight_decay = check_real("weight_decay", weight_decay, 0.0)
        self.initial_accumulator_value = check_real("initial_accumulator_value", initial_accumulator_value, 0.0)
        self.eps = check_real("eps", eps, 0.0)

    def update(self, p, g, state):
        clr = self.lr / (1 + (self.t - 1) * self.lr_decay)
        if self.weight_decay != 0:
            g = g + self.weight_decay * p
        state.setdefault("sum", np.full_like(p, self.initial_accumulator_value))
        state["sum"] += g * g
        p -= clr * g / (np.sqrt(state["sum"]) + self.eps)


class RMSprop(Optimizer):
    r"""RMSprop: divide by a running RMS of the gradients, like ``torch.optim.RMSprop``.

    .. math::

        g &\leftarrow g_t + \lambda \theta_{t-1} \\
        v_t &\leftarrow \rho v_{t-1} + (1 - \rho) g^2 \\
        \bar g_t &\leftarrow \rho \bar g_{t-1} + (1 - \rho) g, \quad
            \tilde v_t = v_t - \bar g_t^2 \text{ if centered, else } \tilde v_t = v_t \\
        b_t &\leftarrow \mu b_{t-1} + g / (\sqrt{\tilde v_t} + \epsilon), \quad
            \theta_t \leftarrow \theta_{t-1} - \alpha b_t \quad \text{if } \mu > 0 \\
        \theta_t &\leftarrow \theta_{t-1} - \alpha g / (\sqrt{\tilde v_t} + \epsilon) \quad \text{otherwise}

    All state starts at zero. Keras's ``RMSprop`` (``rho`` = :math:`\rho`, torch's ``alpha``) puts
    :math:`\epsilon` inside the square root and multiplies :math:`\alpha` into the momentum
    buffer; with a constant learning rate and negligible :math:`\epsilon` the rules coincide.
    Reference: Tieleman & Hinton (2012), Coursera *Neural Networks for Machine Learning*, lecture 6.5.

    Args:
        params: list of floating-point arrays.
        lr: :math:`\alpha`. Default 1e-2.
        alpha: smoothing constant :math:`\rho \ge 0` (torch's name). Default 0.99.
        eps: :math:`\epsilon \ge 0`. Default 1e-8.
        weight_decay: :math:`\lambda \ge 0`. Default 0.
        momentum: :math:`\mu \ge 0`. Default 0.
        centered: normalise by the estimated variance instead of the second moment. Default False.
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False):
        super().__init__(params, lr)
        self.alpha = check_real("alpha", alpha, 0.0)
        self.eps = check_real("eps", eps, 0.0)
        self.weight_decay = check_real("weight_decay", weight_decay, 0.0)
        self.momentum = check_real("momentum", momentum, 0.0)
        self.centered = _check_bool("centered", centered)

    def update(self, p, g, state):
        if self.weight_decay != 0:
            g = g + self.weight_decay * p
        v = state.setdefault("square_avg", np.zeros_like(p))
        v *= self.alpha
        v += (1 - self.alpha) * g * g
        if self.centered:
            g_avg = state.setdefault("grad_avg", np.zeros_like(p))
            g_avg += (1 - self.alpha) * (g - g_avg)
            avg = np.sqrt(v - g_avg * g_avg) + self.eps
        else:
            avg = np.sqrt(v) + self.eps
        if self.momentum > 0:
            buf = state.setdefault("momentum_buffer", np.zeros_like(p))
            buf *= self.momentum
            buf += g / avg
            p -= self.lr * buf
        else:
            p -= self.lr * g / avg


def _check_betas(betas) -> tuple[float, float]:
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"`betas` must be a pair (beta1, beta2). Received: betas={betas!r}")
    return (check_real("betas[0]", betas[0], 0.0, high=1.0, high_open=True),
            check_real("betas[1]", betas[1], 0.0, high=1.0, high_open=True))


class Adam(Optimizer):
    r"""Adam: momentum on the gradient, RMS scaling, both bias-corrected; like ``torch.optim.Adam``.

    .. math::

        g &\leftarrow g_t + \lambda \theta_{t-1} \quad \text{(L2 weight decay, coupled)} \\
        m_t &\leftarrow \beta_1 m_{t-1} + (1 - \beta_1) g \\
        v_t &\leftarrow \beta_2 v_{t-1} + (1 - \beta_2) g^2 \\
        \hat m_t &= m_t / (1 - \beta_1^t), \qquad \hat v_t = v_t / (1 - \beta_2^t) \\
        \theta_t &\leftarrow \theta_{t-1} - \alpha \, \hat m_t / (\sqrt{\hat v_t} + \epsilon)

    With ``amsgrad=True``, :math:`v^{\max}_t = \max(v^{\max}_{t-1}, v_t)` replaces
    :math:`v_t` in :math:`\hat v_t`. State starts at zero.

    Keras's ``Adam`` adds its epsilon to :math:`\sqrt{v_t}` before the bias correction
    (the paper's :math:`\hat\epsilon`), i.e. it uses :math:`\epsilon\sqrt{1-\beta_2^t}` in
    our formula, and its default is 1e-7; otherwise the rules are the same.
    References: Kingma & Ba (2015), *Adam*; AMSGrad: Reddi, Kale & Kumar (2018).

    Args:
        params: list of floating-point arrays.
        lr: :math:`\alpha`. Default 1e-3.
        betas: :math:`(\beta_1, \beta_2)`, each in [0, 1). Default (0.9, 0.999).
        eps: :math:`\epsilon \ge 0`. Default 1e-8.
        weight_decay: :math:`\lambda \ge 0`, added to the gradient. Default 0.
        amsgrad: use the running maximum of :math:`v_t`. Default False.
    """

    decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False):
        super().__init__(params, lr)
        self.betas = _check_betas(betas)
        self.eps = check_real("eps", eps, 0.0)
        self.weight_decay = check_real("weight_decay", weight_decay, 0.0)
        self.amsgrad = _check_bool("amsgrad", amsgrad)

    def update(self, p, g, state):
        beta1, beta2 = self.betas
        if self.weight_decay != 0:
            if self.decoupled:
                p *= 1 - self.lr * self.weight_decay
            else:
                g = g + self.weight_decay * p
        m = state.setdefault("exp_avg", np.zeros_like(p))
        v = state.setdefault("exp_avg_sq", np.zeros_like(p))
        m += (1 - beta1) * (g - m)
        v *= beta2
        v += (1 - beta2) * g * g
        if self.amsgrad:
            v_max = state.setdefault("max_exp_avg_sq", np.zeros_like(p))
            np.maximum(v_max, v, out=v_max)
            v = v_max
        m_hat = m / (1 - beta1 ** self.t)
        v_hat = v / (1 - beta2 ** self.t)
        p -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter 2019), like ``torch.optim.AdamW``.

    The decay shrinks the parameters directly instead of entering the gradient, so it is
    not rescaled by :math:`1/\sqrt{\hat v_t}`:

    .. math::

        \theta &\leftarrow \theta_{t-1} (1 - \alpha \lambda) \\
        m_t, v_t, \hat m_t, \hat v_t &\text{ as in } \texttt{Adam} \text{ with } g = g_t \\
        \theta_t &\leftarrow \theta - \alpha \, \hat m_t / (\sqrt{\hat v_t} + \epsilon)

    Keras's ``AdamW`` applies the same :math:`\theta (1 - \alpha\lambda)` before its Adam step.

    Args:
        params, lr, betas, eps, amsgrad: as in :class:`Adam`.
        weight_decay: :math:`\lambda \ge 0`. Default 1e-2 (torch's default; Keras uses 4e-3).
    """

    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


# --- learning-rate schedules -----------------------------------------------------------------------

class _Schedule:
    """Base: remembers the optimizer's initial lr; :meth:`step` advances one epoch and sets ``optimizer.lr``."""

    def __init__(self, optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"`optimizer` must be a dlnotes.scratch.optim.Optimizer. "
                            f"Received: optimizer of type {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.last_epoch = 0

    def lr_at(self, epoch: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def step(self) -> None:
        """End an epoch: ``last_epoch += 1`` and set the optimizer's lr for the next one."""
        self.last_epoch += 1
        self.optimizer.lr = self.lr_at(self.last_epoch)

    def get_last_lr(self) -> float:
        """The current learning rate (torch returns a list, one per parameter group)."""
        return self.optimizer.lr


class StepLR(_Schedule):
    r"""Multiply the learning rate by ``gamma`` every ``step_size`` epochs, like ``torch.optim.lr_scheduler.StepLR``.

    .. math::

        \alpha_e = \alpha_0 \cdot \text{gamma}^{\lfloor e / \text{step\_size} \rfloor}

    where :math:`e` counts calls to :meth:`step` (``last_epoch``). torch computes the same
    value recursively (multiplying the current lr), which is equal when no other code changes it.

    Args:
        optimizer: a dlnotes optimizer; its current ``lr`` is :math:`\alpha_0`.
        step_size: positive integer period.
        gamma: multiplicative factor, >= 0. Default 0.1.
    """

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1):
        self.step_size = check_positive_int("step_size", step_size)
        self.gamma = check_real("gamma", gamma, 0.0)
        super().__init__(optimizer)

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(_Schedule):
    r"""Cosine annealing from the initial lr down to ``eta_min`` over ``T_max`` epochs.

    Like ``torch.optim.lr_scheduler.CosineAnnealingLR`` (without restarts):

    .. math::

        \alpha_e = \alpha_{\min} + \tfrac12 (\alpha_0 - \alpha_{\min}) \left(1 + \cos\frac{\pi e}{T_{\max}}\right)

    After :math:`T_{\max}` the cosine continues, so the lr rises again (as in torch). torch
    evaluates this closed form recursively; the two agree to rounding error.
    Reference: Loshchilov & Hutter (2017), *SGDR* (which adds warm restarts).

    Args:
        optimizer: a dlnotes optimizer; its current ``lr`` is :math:`\alpha_0`.
        T_max: positive integer half-period.
        eta_min: final learning rate :math:`\alpha_{\min} \ge 0` (torch's name). Default 0.
    """

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0):
        self.T_max = check_positive_int("T_max", T_max)
        self.eta_min = check_real("eta_min", eta_min, 0.0)
        super().__init__(optimizer)

    def lr_at(self, epoch: int) -> float:
        return self.eta_min + 0.5 * (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max))
