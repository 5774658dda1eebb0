r"""Character-level text generation with an LSTM in PyTorch.

Taught in: *Text generation with PyTorch* (``book/projects/text_generation.ipynb``).

A character-level language model reads a text one character at a time and, at every
position :math:`t`, predicts a distribution over the next character. Trained with the
cross-entropy

.. math::

    L = -\frac{1}{NT} \sum_{n=1}^{N} \sum_{t=1}^{T} \log p_\theta(c_{n,t+1} \mid c_{n,1}, \dots, c_{n,t})

(in nats per character; :math:`\exp(L)` is the perplexity), it generates text by sampling one
character, feeding it back in, and repeating.

The module follows the pipeline API of :mod:`dlnotes.pipelines.common`
(``build_torch_model`` -> model, ``train_torch`` -> :data:`~dlnotes.pipelines.common.History`,
``evaluate_torch`` -> dict of metrics, the argument names ``batch_size``, ``learning_rate``,
``seed``, ``validation_data``, Adam with :data:`~dlnotes.pipelines.common.ADAM_EPSILON`), with
one difference its data impose: a language model trains on random windows of one long id
sequence, so training is counted in optimisation ``steps``, not epochs, and its History holds
one entry per evaluation (every ``eval_every`` steps), not per epoch.

In the order the chapter uses them: a :class:`Vocabulary` (characters :math:`\leftrightarrow`
integer ids), :func:`random_windows` (seeded input/target windows), :class:`LSTMModel` (the
seed listing, kept exactly as it was written), :class:`CharLSTM` (the model a practitioner
would write) and :func:`build_torch_model`, :func:`ngram_loss` (the count-based baselines a
language model must beat), :func:`train_step` and :func:`train_torch`, :func:`evaluate_loss`,
:func:`evaluate_torch` and :func:`perplexity`, :func:`sample` and :func:`known_word_fraction`; then,
for the section on using each training step better, :func:`learning_rates` (warm-up and linear
decay), :func:`stream_windows` and :func:`tbptt_step` (a state carried across batches: truncated
back-propagation through time), :func:`evaluate_stream_loss`, and :class:`CharTransformer`, a small
causal Transformer to compare with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from dlnotes._checks import check_choice, check_positive_float, check_positive_int, check_real
from dlnotes.pipelines.common import History, append_epoch, device_of, new_history, require_framework, torch_adam
from dlnotes.runtime import _check_seed

__all__ = ["Vocabulary", "random_windows", "LSTMModel", "CharLSTM", "CharTransformer", "build_torch_model",
           "ngram_loss", "train_step", "learning_rates", "stream_windows", "tbptt_step", "train_torch",
           "evaluate_loss", "evaluate_stream_loss", "evaluate_torch", "perplexity", "known_word_fraction", "sample"]


def _check_text(name: str, value) -> str:
    if not isinstance(value, str):
        raise TypeError(f"`{name}` must be a str. Received: {name} of type {type(value).__name__}")
    return value


def _check_ids(name: str, value) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.dtype != torch.int64:
        got = value.dtype if isinstance(value, torch.Tensor) else type(value).__name__
        raise TypeError(f"`{name}` must be an int64 torch tensor. Received: {name} of type {got}")
    return value


def _check_sequence(name: str, value, min_length: int) -> torch.Tensor:
    """A 1-D int64 tensor of at least ``min_length`` ids."""
    value = _check_ids(name, value)
    if value.ndim != 1 or len(value) < min_length:
        raise ValueError(f"`{name}` must be 1-D with at least {min_length} ids. "
                         f"Received: {name}.shape={tuple(value.shape)}")
    return value


def _check_model(value) -> nn.Module:
    require_framework(value, "torch")
    return value


@dataclass(frozen=True)
class Vocabulary:
    """The characters of a corpus, sorted, and their integer ids ``0, ..., len(chars) - 1``.

    Build it with :meth:`from_text`; the order is the sorted order of the characters, so the
    same text always gives the same ids, whatever order its characters appear in.

    Attributes:
        chars: the distinct characters, sorted (``chars[i]`` has id ``i``).
    """

    chars: tuple[str, ...]

    def __post_init__(self):
        if (not isinstance(self.chars, tuple) or not self.chars
                or not all(isinstance(c, str) and len(c) == 1 for c in self.chars)
                or list(self.chars) != sorted(set(self.chars))):
            raise ValueError("`chars` must be a non-empty tuple of distinct single characters, sorted. "
                             f"Received: chars={self.chars!r}")
        object.__setattr__(self, "_index", {c: i for i, c in enumerate(self.chars)})

    @classmethod
    def from_text(cls, text: str) -> "Vocabulary":
        """The sorted set of characters of ``text``.

        Raises:
            TypeError: ``text`` is not a str.
            ValueError: ``text`` is empty.
        """
        text = _check_text("text", text)
        if not text:
            raise ValueError("`text` must contain at least one character. Received: text=''")
        return cls(tuple(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        """Character ids of ``text``: int64 tensor of shape ``(len(text),)``.

        Raises:
            TypeError: ``text`` is not a str.
            ValueError: ``text`` contains a character that is not in the vocabulary.
        """
        text = _check_text("text", text)
        unknown = sorted(set(text) - set(self._index))
        if unknown:
            raise ValueError(f"`text` contains characters not in the vocabulary: {unknown!r}. "
                             f"Received: text={text[:40]!r}")
        return torch.tensor([self._index[c] for c in text], dtype=torch.int64)

    def decode(self, ids) -> str:
        """The text of a 1-D sequence of ids (a tensor or a list of ints); the inverse of :meth:`encode`.

        Raises:
            ValueError: ``ids`` is not 1-D or holds an id outside ``[0, len(self))``.
        """
        ids = torch.as_tensor(ids, dtype=torch.int64)
        if ids.ndim != 1:
            raise ValueError(f"`ids` must be 1-D. Received: ids.shape={tuple(ids.shape)}")
        bad = ids[(ids < 0) | (ids >= len(self.chars))]
        if len(bad):
            raise ValueError(f"`ids` must lie in [0, {len(self.chars)}). Received: ids containing {bad[0].item()}")
        return "".join(self.chars[i] for i in ids.tolist())


def random_windows(data: torch.Tensor, batch_size: int, seq_len: int,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""A batch of random windows of a long id sequence, and the same windows shifted by one.

    Window :math:`n` starts at a uniformly drawn :math:`s_n \in [0, \mathrm{len}(data) - T - 1]`;
    inputs are :math:`x_{n,t} = data[s_n + t]` and targets :math:`y_{n,t} = data[s_n + t + 1]`:
    at every position the target is the next character.

    Args:
        data: int64 tensor of shape ``(L,)`` with ``L >= seq_len + 1``.
        batch_size: number of windows :math:`N`.
        seq_len: window length :math:`T`.
        generator: a seeded ``torch.Generator`` for reproducible batches (default: torch's global one).

    Returns:
        ``(x, y)``, each int64 of shape ``(batch_size, seq_len)``, on ``data``'s device.

    Raises:
        TypeError: ``data`` is not an int64 tensor.
        ValueError: ``data`` is not 1-D or is shorter than ``seq_len + 1``; a size is not a positive integer.
    """
    batch_size = check_positive_int("batch_size", batch_size)
    seq_len = check_positive_int("seq_len", seq_len)
    data = _check_sequence("data", data, seq_len + 1)
    starts = torch.randint(0, len(data) - seq_len, (batch_size,), generator=generator)
    windows = data[starts.to(data.device)[:, None] + torch.arange(seq_len + 1, device=data.device)]
    return windows[:, :-1], windows[:, 1:]


class LSTMModel(nn.Module):
    """The seed listing, kept exactly as written: one prediction per sequence.

    ``input`` is sequence-first, ``(T, N, input_size)`` (one-hot vectors for characters),
    ``hidden`` is a tuple ``(h_0, c_0)``, each ``(1, N, hidden_size)``, that the caller must
    create and carry. Returns the prediction from the last time step, ``(N, output_size)``, and
    the new ``hidden``. The chapter explains what this design implies and improves it as :class:`CharLSTM`.
    """

    def __init__(self, input_size, hidden_size, output_size):
        super(LSTMModel, self).__init__()
        self.hidden_size = hidden_size
        self.lstm = nn.LSTM(input_size, hidden_size)
        self.fc = nn.Linear(hidden_size, output_size)

    def forward(self, input, hidden):
        output, hidden = self.lstm(input, hidden)
        output = self.fc(output[-1])
        return output, hidden


class CharLSTM(nn.Module):
    r"""Character-level LSTM language model: embedding, LSTM, a prediction at every step.

    .. math::

        e_t = E[c_t], \quad (h_t, s_t) = \mathrm{LSTM}(e_t, (h_{t-1}, s_{t-1})), \quad
        \mathrm{logits}_t = W \, \mathrm{dropout}(h_t) + b .

    Args:
        vocab_size: number of characters :math:`V`.
        embedding_dim: size of the character embedding (default 64); ``nn.Embedding`` replaces one-hot inputs.
        hidden_size: LSTM state size :math:`H` (default 256).
        num_layers: stacked LSTM layers (default 1).
        dropout: dropout probability on the LSTM output and, with ``num_layers > 1``, between layers
            (default 0.0, as ``nn.LSTM``'s ``dropout``).

    Raises:
        ValueError: a size is not a positive integer, or ``dropout`` is not in ``[0, 1)``.
        TypeError: ``dropout`` is not a finite real number.
    """

    def __init__(self, vocab_size: int, embedding_dim: int = 64, hidden_size: int = 256,
                 num_layers: int = 1, dropout: float = 0.0):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("embedding_dim", embedding_dim),
                            ("hidden_size", hidden_size), ("num_layers", num_layers)):
            check_positive_int(name, value)
        dropout = check_real("dropout", dropout, 0.0, 1.0, high_open=True)
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_size, num_layers=num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden_size, vocab_size)

    def forward(self, x: torch.Tensor, hidden: tuple[torch.Tensor, torch.Tensor] | None = None):
        """Logits for the next character at every position.

        Args:
            x: int64 character ids of shape ``(N, T)`` (batch first).
            hidden: ``(h, c)``, each ``(num_layers, N, hidden_size)``, or ``None`` for zeros.

        Returns:
            ``(logits, hidden)``: logits of shape ``(N, T, vocab_size)`` and the final ``(h, c)``,
            which can be passed back in to continue the sequence.

        Raises:
            TypeError: ``x`` is not an int64 tensor.
            ValueError: ``x`` is not 2-D.
        """
        x = _check_ids("x", x)
        if x.ndim != 2:
            raise ValueError(f"`x` must be 2-D (batch, seq_len). Received: x.shape={tuple(x.shape)}")
        output, hidden = self.lstm(self.embedding(x), hidden)
        return self.fc(self.dropout(output)), hidden


class CharTransformer(nn.Module):
    r"""A small decoder-only Transformer language model: causal self-attention over the last ``context`` characters.

    .. math::

        z^{(0)}_t = E[c_t] + P_t, \qquad
        z^{(l)} = \mathrm{Block}_l(z^{(l-1)}), \qquad \mathrm{logits}_t = W\,\mathrm{LN}(z^{(L)}_t) + b,

    where each block is pre-norm, :math:`z \leftarrow z + \mathrm{MHA}(\mathrm{LN}(z))`,
    :math:`z \leftarrow z + \mathrm{MLP}(\mathrm{LN}(z))` (``nn.TransformerEncoderLayer`` with
    ``norm_first=True``, GELU, a :math:`4d` hidden layer), and attention is masked so that position
    :math:`t` attends only to positions :math:`\le t`: the prediction for position :math:`t + 1`
    depends on :math:`c_1, \dots, c_t` alone, as for the LSTM. :math:`P` is a learned position
    embedding, so at most ``context`` positions fit in one call.

    Args:
        vocab_size: number of characters :math:`V`.
        context: the longest input :math:`T_{\max}` (default 64).
        d_model: width :math:`d` (default 128), a multiple of ``num_heads``.
        num_heads: attention heads (default 4).
        num_layers: blocks :math:`L` (default 2).
        dropout: dropout probability in the blocks, in ``[0, 1)`` (default 0.0).

    Raises:
        ValueError: a size is not a positive integer, ``d_model`` is not a multiple of
            ``num_heads``, or ``dropout`` is not in ``[0, 1)``.
        TypeError: ``dropout`` is not a finite real number.
    """

    def __init__(self, vocab_size: int, context: int = 64, d_model: int = 128, num_heads: int = 4,
                 num_layers: int = 2, dropout: float = 0.0):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("context", context), ("d_model", d_model),
                            ("num_heads", num_heads), ("num_layers", num_layers)):
            check_positive_int(name, value)
        if d_model % num_heads:
            raise ValueError(f"`d_model` must be a multiple of num_heads={num_heads}. Received: d_model={d_model}")
        dropout = check_real("dropout", dropout, 0.0, 1.0, high_open=True)
        self.context = context
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.position = nn.Embedding(context, d_model)
        layer = nn.TransformerEncoderLayer(d_model, num_heads, dim_feedforward=4 * d_model, dropout=dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.fc = nn.Linear(d_model, vocab_size)

    def forward(self, x: torch.Tensor, hidden=None):
        """Logits for the next character at every position.

        Args:
            x: int64 ids ``(N, T)`` with ``T <= context``.
            hidden: ignored (a Transformer carries no state); accepted so that the model fits
                the same training and evaluation functions as :class:`CharLSTM`.

        Returns:
            ``(logits, None)``, logits of shape ``(N, T, vocab_size)``.

        Raises:
            TypeError: ``x`` is not an int64 tensor.
            ValueError: ``x`` is not 2-D or is longer than ``context``.
        """
        x = _check_ids("x", x)
        if x.ndim != 2 or x.shape[1] > self.context:
            raise ValueError(f"`x` must be 2-D (batch, seq_len) with seq_len <= context={self.context}. "
                             f"Received: x.shape={tuple(x.shape)}")
        t = x.shape[1]
        z = self.embedding(x) + self.position(torch.arange(t, device=x.device))
        mask = nn.Transformer.generate_square_subsequent_mask(t, device=x.device)
        z = self.blocks(z, mask=mask, is_causal=True)
        return self.fc(self.norm(z)), None


def build_torch_model(vocab_size: int, *, embedding_dim: int = 64, hidden_size: int = 256,
                      num_layers: int = 1, dropout: float = 0.0) -> CharLSTM:
    """The chapter's model: a :class:`CharLSTM` (the ``build_*`` step of the pipeline API).

    Weights are drawn from torch's global generator: seed it first
    (:func:`dlnotes.seed_everything`) for a reproducible model. Arguments as in :class:`CharLSTM`.
    """
    return CharLSTM(vocab_size, embedding_dim=embedding_dim, hidden_size=hidden_size,
                    num_layers=num_layers, dropout=dropout)


def ngram_loss(train_ids: torch.Tensor, data: torch.Tensor, *, vocab_size: int, n: int = 1,
               smoothing: float = 1.0) -> float:
    r"""Cross-entropy on ``data`` of an ``n``-gram count model fitted to ``train_ids``, in nats per character.

    The model predicts character :math:`c` after the context :math:`u` (the previous
    :math:`n - 1` characters; none for a unigram model) with the smoothed relative frequency

    .. math::

        p(c \mid u) = \frac{\#(u c) + \lambda}{\#(u) + \lambda V},

    where :math:`\#` counts occurrences in ``train_ids`` (:math:`\#(u)` counts :math:`u` followed
    by any character), :math:`V` is ``vocab_size`` and :math:`\lambda` is ``smoothing`` (additive,
    Laplace smoothing for :math:`\lambda = 1`). The loss averages
    :math:`-\log p(d_t \mid d_{t-n+1}, \dots, d_{t-1})` over the :math:`\mathrm{len}(data) - n + 1`
    positions of ``data`` that have a full context. Computed in float64 from integer counts, so
    the result is the same on every machine. A unigram model (:math:`n = 1`) knows only how
    frequent each character is; a neural language model that does not beat it has learnt nothing
    from the context.

    Args:
        train_ids: int64 ids ``(L,)`` with ``L >= n``, in ``[0, vocab_size)``.
        data: int64 ids ``(M,)`` with ``M >= n``, in ``[0, vocab_size)``.
        vocab_size: :math:`V`.
        n: the order (default 1, a unigram model); the count table has :math:`V^n` entries,
            at most ``2**27``.
        smoothing: :math:`\lambda > 0` (default 1.0).

    Returns:
        The mean negative log-probability, a float.

    Raises:
        TypeError: ``train_ids`` or ``data`` is not an int64 tensor; ``smoothing`` is not a number.
        ValueError: a sequence is not 1-D, is too short or holds an id outside ``[0, vocab_size)``;
            ``vocab_size`` or ``n`` is not a positive integer, or ``vocab_size ** n`` is too large;
            ``smoothing`` is not positive.
    """
    vocab_size = check_positive_int("vocab_size", vocab_size)
    n = check_positive_int("n", n)
    if vocab_size ** n > 2 ** 27:
        raise ValueError(f"`n` is too large: vocab_size ** n = {vocab_size ** n} counts. Received: n={n}")
    smoothing = check_real("smoothing", smoothing, 0.0, low_open=True)
    sequences = {}
    for name, ids in (("train_ids", train_ids), ("data", data)):
        ids = _check_sequence(name, ids, n).cpu()
        if ids.min() < 0 or ids.max() >= vocab_size:
            raise ValueError(f"`{name}` must hold ids in [0, {vocab_size}). "
                             f"Received: {name}.min()={ids.min().item()}, {name}.max()={ids.max().item()}")
        sequences[name] = ids

    def ngram_index(ids: torch.Tensor) -> torch.Tensor:  # the n-gram ending at each position, base V
        index = torch.zeros(len(ids) - n + 1, dtype=torch.int64)
        for k in range(n):
            index = index * vocab_size + ids[k: len(ids) - n + 1 + k]
        return index

    counts = torch.bincount(ngram_index(sequences["train_ids"]), minlength=vocab_size ** n).double()
    counts = counts.view(-1, vocab_size)                       # (V^(n-1) contexts, V next characters)
    log_p = torch.log(counts + smoothing) - torch.log(counts.sum(1, keepdim=True) + smoothing * vocab_size)
    index = ngram_index(sequences["data"])
    return -log_p.view(-1)[index].mean().item()


def _next_char_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    logits, _ = model(x)
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction=reduction)


def _check_clip_norm(clip_norm) -> float | None:
    return None if clip_norm is None else check_positive_float("clip_norm", clip_norm)


def _check_step(model, optimizer, x, y, clip_norm):
    """The arguments of one training step, checked: ``(model, x, y, clip_norm)``."""
    model = _check_model(model)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"`optimizer` must be a torch.optim.Optimizer. "
                        f"Received: optimizer of type {type(optimizer).__name__}")
    x, y = _check_ids("x", x), _check_ids("y", y)
    if x.shape != y.shape:
        raise ValueError(f"`y` must have the shape of `x` {tuple(x.shape)}. Received: y.shape={tuple(y.shape)}")
    return model, x, y, _check_clip_norm(clip_norm)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               clip_norm: float | None = 1.0) -> float:
    r"""One optimisation step on the mean next-character cross-entropy, with gradient clipping.

    Computes :math:`L` (see the module docstring) on the batch, back-propagates, rescales the
    gradient so that its global norm is at most ``clip_norm``
    (:math:`g \leftarrow g \min(1, \tau / \lVert g \rVert)`, as ``torch.nn.utils.clip_grad_norm_``)
    and lets ``optimizer`` update the parameters.

    Args:
        model: a :class:`CharLSTM` (or any module mapping ``(N, T)`` ids to ``((N, T, V) logits, state)``).
        optimizer: the optimizer over ``model``'s parameters.
        x, y: int64 inputs and targets, each ``(N, T)``, on the model's device.
        clip_norm: the largest allowed gradient norm :math:`\tau` (default 1.0); ``None`` disables clipping.

    Returns:
        The batch loss before the update, in nats per character.

    Raises:
        TypeError: ``model`` or ``optimizer`` has the wrong type, or ``x``/``y`` is not int64.
        ValueError: ``x`` and ``y`` differ in shape, or ``clip_norm`` is not positive.
    """
    model, x, y, clip_norm = _check_step(model, optimizer, x, y, clip_norm)
    model.train()
    loss = _next_char_loss(model, x, y)
    optimizer.zero_grad()
    loss.backward()
    if clip_norm is not None:
        nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
    optimizer.step()
    return loss.item()


def learning_rates(steps: int, peak: float, warmup_steps: int = 0, decay_fraction: float = 0.0,
                   min_lr_fraction: float = 0.0) -> list[float]:
    r"""The learning rate of every step: linear warm-up, constant, then linear decay.

    With :math:`S` = ``steps``, :math:`W` = ``warmup_steps``, :math:`D = S - \mathrm{round}(f S)`
    the first decaying step (:math:`f` = ``decay_fraction``), :math:`m` = ``min_lr_fraction`` and
    :math:`\alpha` = ``peak``, step :math:`i = 0, \dots, S - 1` uses

    .. math::

        \alpha_i = \alpha \, \min\!\Big(1, \frac{i + 1}{W}\Big) \cdot
        \begin{cases} 1 & i < D \\ m + (1 - m) \dfrac{S - i}{S - D} & i \ge D \end{cases}

    (the warm-up factor is 1 when :math:`W = 0`), the product of PyTorch's
    ``LinearLR(start_factor=1/W, total_iters=W-1)`` and, from step :math:`D`,
    ``LinearLR(start_factor=1, end_factor=m, total_iters=S-D)``. The warm-up keeps Adam's first,
    badly estimated steps small; the decay to nearly zero lets the weights settle at the end.

    Args:
        steps: :math:`S \ge 1`.
        peak: :math:`\alpha > 0`.
        warmup_steps: :math:`0 \le W \le S` (default 0, no warm-up).
        decay_fraction: :math:`f \in [0, 1]`, the share of the steps that decay (default 0, none).
        min_lr_fraction: :math:`m \in [0, 1]` (default 0).

    Returns:
        A list of ``steps`` floats: entry ``i`` is the learning rate of step ``i + 1``.

    Raises:
        ValueError: a count is not a positive (``warmup_steps``: non-negative) integer or exceeds
            ``steps``; a fraction is outside ``[0, 1]``; ``peak`` is not positive.
        TypeError: a fraction is not a finite real number.
    """
    steps, peak = check_positive_int("steps", steps), check_positive_float("peak", peak)
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or not 0 <= warmup_steps <= steps:
        raise ValueError(f"`warmup_steps` must be an integer in [0, steps={steps}]. Received: warmup_steps={warmup_steps!r}")
    f = check_real("decay_fraction", decay_fraction, 0.0, 1.0)
    m = check_real("min_lr_fraction", min_lr_fraction, 0.0, 1.0)
    first_decay = steps - round(f * steps)
    rates = []
    for i in range(steps):
        warm = 1.0 if warmup_steps == 0 else min(1.0, (i + 1) / warmup_steps)
        decay = 1.0 if i < first_decay else m + (1 - m) * (steps - i) / (steps - first_decay)
        rates.append(peak * warm * decay)
    return rates


def stream_windows(data: torch.Tensor, batch_size: int, seq_len: int, offset: int = 0
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Cut ``data`` into ``batch_size`` parallel streams and each stream into consecutive windows.

    After dropping the first ``offset`` ids, the text is split into :math:`N` = ``batch_size``
    contiguous streams of :math:`M = \lfloor (L - \mathrm{offset} - 1) / N \rfloor` ids; stream
    :math:`n` starts at :math:`o + nM`. Each stream gives :math:`K = \lfloor M / T \rfloor`
    windows of :math:`T` = ``seq_len`` ids:
    :math:`x[k, n, t] = data[o + nM + kT + t]` and :math:`y[k, n, t] = data[o + nM + kT + t + 1]`.
    So row :math:`n` of batch :math:`k + 1` continues row :math:`n` of batch :math:`k` in the text:
    a recurrent model can carry its state from one batch to the next (:func:`tbptt_step`).

    Args:
        data: int64 ids ``(L,)`` with ``L >= offset + batch_size * seq_len + 1``.
        batch_size: the number of streams :math:`N`.
        seq_len: the window length :math:`T`.
        offset: ids skipped at the start (default 0), so that passes can start at different places.

    Returns:
        ``(x, y)``, each int64 ``(K, N, T)``: batch :math:`k` is ``(x[k], y[k])``.

    Raises:
        TypeError: ``data`` is not an int64 tensor.
        ValueError: a size is not a positive integer, ``offset`` is negative, or ``data`` is too short.
    """
    batch_size, seq_len = check_positive_int("batch_size", batch_size), check_positive_int("seq_len", seq_len)
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"`offset` must be a non-negative integer. Received: offset={offset!r}")
    data = _check_sequence("data", data, offset + batch_size * seq_len + 1)
    m = (len(data) - offset - 1) // batch_size
    k = m // seq_len
    starts = offset + torch.arange(batch_size, device=data.device) * m
    index = starts[None, :, None] + (torch.arange(k, device=data.device) * seq_len)[:, None, None] \
        + torch.arange(seq_len, device=data.device)[None, None, :]
    return data[index], data[index + 1]


def _detach(hidden):
    if hidden is None:
        return None
    return tuple(h.detach() for h in hidden) if isinstance(hidden, tuple) else hidden.detach()


def tbptt_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, hidden=None,
               clip_norm: float | None = 1.0) -> tuple[float, object]:
    r"""One step of truncated back-propagation through time: :func:`train_step` from a carried state.

    The model starts from ``hidden``, the state the previous batch ended in (``None`` for zeros),
    so the forward pass sees all the text before the window; the state is *detached*, so the
    gradient flows back only through these :math:`T` steps. Successive calls on the batches of
    :func:`stream_windows` compute the same forward pass as one long pass over each stream, with
    the gradient truncated every :math:`T` steps (Williams and Peng's truncated BPTT).

    Args:
        model, optimizer, x, y, clip_norm: as in :func:`train_step`.
        hidden: the state returned by the previous call, or ``None``.

    Returns:
        ``(loss, hidden)``: the batch loss before the update and the final state, detached.

    Raises:
        As :func:`train_step`.
    """
    model, x, y, clip_norm = _check_step(model, optimizer, x, y, clip_norm)
    model.train()
    logits, hidden = model(x, _detach(hidden))
    loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    optimizer.zero_grad()
    loss.backward()
    if clip_norm is not None:
        nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
    optimizer.step()
    return loss.item(), _detach(hidden)


def _check_schedule(schedule, steps, learning_rate, warmup_steps, decay_at, decay_factor, min_lr_fraction):
    """The learning rate of every step for :func:`train_torch` (``None``: the MultiStepLR case)."""
    check_choice("schedule", schedule, ("step", "linear"))
    if decay_at is not None:
        decay_at = check_real("decay_at", decay_at, 0.0, 1.0, low_open=True, high_open=True)
    check_real("decay_factor", decay_factor, 0.0, 1.0, low_open=True)
    if schedule == "step":
        if warmup_steps:
            raise ValueError(f"`warmup_steps` needs schedule='linear'. Received: warmup_steps={warmup_steps!r}")
        return None
    return learning_rates(steps, learning_rate, warmup_steps, 0.0 if decay_at is None else 1.0 - decay_at,
                          min_lr_fraction)


def train_torch(model: nn.Module, train_ids: torch.Tensor, *, steps: int, batch_size: int, seq_len: int,
                learning_rate: float, seed: int, validation_data: torch.Tensor | None = None,
                eval_every: int = 100, clip_norm: float | None = 1.0, decay_at: float | None = 0.8,
                decay_factor: float = 0.25, schedule: str = "step", warmup_steps: int = 0,
                min_lr_fraction: float = 0.0, carry_state: bool = False, callback=None) -> History:
    r"""Train a language model for ``steps`` Adam steps on windows of ``train_ids``.

    Step :math:`s = 1, \dots, S` draws ``batch_size`` windows of ``seq_len`` characters
    (:func:`random_windows`, from a ``torch.Generator`` seeded once with ``seed``) and runs
    :func:`train_step` with Adam (:func:`~dlnotes.pipelines.common.torch_adam`, learning rate
    :math:`\alpha` = ``learning_rate``, :math:`\hat\epsilon` = ``ADAM_EPSILON``). The learning rate
    follows ``schedule``: ``"step"`` multiplies it by ``decay_factor`` after ``decay_at`` :math:`\cdot S`
    steps (``MultiStepLR``); ``"linear"`` warms it up over ``warmup_steps``, keeps it, and from
    ``decay_at`` :math:`\cdot S` decays it linearly to ``min_lr_fraction`` :math:`\cdot\,\alpha`
    (:func:`learning_rates`, applied with ``LambdaLR``). With ``carry_state`` the batches are
    the consecutive windows of :func:`stream_windows` instead, each pass over the text starting at
    a random offset in ``[0, seq_len)``, and the state is carried between batches
    (:func:`tbptt_step`), reset to zeros at the start of each pass. The number of steps, not a
    time budget, fixes the work, so the result does not depend on the machine's speed. Weights
    are not re-drawn: seed before building the model.

    Args:
        model: as in :func:`train_step`, on the device of ``train_ids``.
        train_ids: int64 ids ``(L,)`` with ``L >= seq_len + 1`` (``batch_size * seq_len + seq_len``
            with ``carry_state``).
        steps: :math:`S`, a multiple of ``eval_every``.
        batch_size, seq_len: windows per step :math:`N` and their length :math:`T`.
        learning_rate: :math:`\alpha` (the peak, with ``"linear"``).
        seed: seeds the choice of windows (a non-negative integer below ``2**32``).
        validation_data: int64 ids ``(M,)`` (``M >= seq_len + 1``) to evaluate on with
            :func:`evaluate_loss` every ``eval_every`` steps, or ``None``.
        eval_every: steps between two entries of the History (default 100).
        clip_norm: as in :func:`train_step` (default 1.0).
        decay_at: the fraction of ``steps`` after which the learning rate drops (``"step"``) or
            starts to decay (``"linear"``), in ``(0, 1)``, or ``None`` for no decay (default 0.8).
        decay_factor: the factor of ``"step"``, in ``(0, 1]`` (default 0.25).
        schedule: ``"step"`` (default) or ``"linear"``.
        warmup_steps: ``"linear"`` only: warm-up steps :math:`W` (default 0).
        min_lr_fraction: ``"linear"`` only: the final learning rate over the peak (default 0).
        carry_state: train on consecutive windows with a carried state (default ``False``).
        callback: ``callback(step, logs)``, called after each evaluation with the History entry
            just appended; if it returns ``True``, training stops there (default ``None``).

    Returns:
        A :data:`~dlnotes.pipelines.common.History` with one entry per evaluation: entry ``i``
        describes the model after step ``(i + 1) * eval_every``. ``"loss"`` is the mean training
        batch loss over the ``eval_every`` steps before it (as Keras averages an epoch's batches);
        ``"val_loss"``, only with ``validation_data``, is the loss on ``validation_data`` then.

    Raises:
        TypeError: ``model`` is not a torch module, the ids are not int64, ``seed`` is not an
            integer, ``callback`` is not callable.
        ValueError: a count or size is not a positive integer, ``steps`` is not a multiple of
            ``eval_every``, ``learning_rate`` or ``clip_norm`` is not positive, ``schedule`` is
            unknown, a schedule argument is out of range, or a sequence is too short.
    """
    model = _check_model(model)
    steps, batch_size = check_positive_int("steps", steps), check_positive_int("batch_size", batch_size)
    seq_len, eval_every = check_positive_int("seq_len", seq_len), check_positive_int("eval_every", eval_every)
    if steps % eval_every:
        raise ValueError(f"`steps` must be a multiple of eval_every={eval_every}. Received: steps={steps}")
    seed, clip_norm = _check_seed(seed), _check_clip_norm(clip_norm)
    train_ids = _check_sequence("train_ids", train_ids, (batch_size + 1) * seq_len + 1 if carry_state else seq_len + 1)
    if validation_data is not None:
        validation_data = _check_sequence("validation_data", validation_data, seq_len + 1)
    if callback is not None and not callable(callback):
        raise TypeError(f"`callback` must be callable. Received: callback of type {type(callback).__name__}")
    check_positive_float("learning_rate", learning_rate)
    rates = _check_schedule(schedule, steps, learning_rate, warmup_steps, decay_at, decay_factor, min_lr_fraction)

    optimizer = torch_adam(model.parameters(), learning_rate)
    if rates is None:
        milestones = [] if decay_at is None else [int(decay_at * steps)]
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=decay_factor)
    else:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: rates[min(i, steps - 1)] / learning_rate)
    generator = torch.Generator().manual_seed(seed)
    history = new_history(validation=validation_data is not None, keys=("loss",))
    running, hidden, streams, k = 0.0, None, None, 0
    for step in range(1, steps + 1):
        if not carry_state:
            running += train_step(model, optimizer, *random_windows(train_ids, batch_size, seq_len, generator),
                                  clip_norm=clip_norm)
        else:
            if streams is None or k == len(streams[0]):   # a new pass: new offset, zero state
                offset = int(torch.randint(0, seq_len, (1,), generator=generator))
                streams, k, hidden = stream_windows(train_ids, batch_size, seq_len, offset), 0, None
            loss, hidden = tbptt_step(model, optimizer, streams[0][k], streams[1][k], hidden, clip_norm=clip_norm)
            running, k = running + loss, k + 1
        scheduler.step()
        if step % eval_every == 0:
            logs = {"loss": running / eval_every}
            if validation_data is not None:
                logs["val_loss"] = evaluate_loss(model, validation_data, seq_len)
            append_epoch(history, logs)
            running = 0.0
            if callback is not None and callback(step, logs) is True:
                break
    return history


def evaluate_loss(model: nn.Module, data: torch.Tensor, seq_len: int, batch_size: int = 256) -> float:
    r"""Mean next-character cross-entropy of ``model`` on ``data``, in nats per character.

    ``data`` is cut into ``K = (len(data) - 1) // seq_len`` consecutive, non-overlapping windows of
    ``seq_len`` characters (each starting from a zero state, like training windows); the loss is
    averaged over all :math:`K T` predictions. Runs in eval mode (no dropout) without gradients
    and restores the model's previous mode.

    Args:
        model: as in :func:`train_step`.
        data: int64 ids of shape ``(L,)`` with ``L >= seq_len + 1``, on the model's device.
        seq_len: window length :math:`T`.
        batch_size: windows per forward pass (memory only; default 256).

    Returns:
        The loss in nats per character (a float).

    Raises:
        TypeError: ``model`` is not a module or ``data`` is not an int64 tensor.
        ValueError: ``data`` is not 1-D or too short; a size is not a positive integer.
    """
    model = _check_model(model)
    seq_len = check_positive_int("seq_len", seq_len)
    batch_size = check_positive_int("batch_size", batch_size)
    data = _check_sequence("data", data, seq_len + 1)
    k = (len(data) - 1) // seq_len
    x = data[: k * seq_len].view(k, seq_len)
    y = data[1: k * seq_len + 1].view(k, seq_len)
    was_training = model.training
    model.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(0, k, batch_size):
            total += _next_char_loss(model, x[i: i + batch_size], y[i: i + batch_size], reduction="sum").item()
    model.train(was_training)
    return total / (k * seq_len)


def evaluate_stream_loss(model: nn.Module, data: torch.Tensor, seq_len: int, batch_size: int = 16) -> float:
    r"""Next-character cross-entropy of a recurrent ``model`` on ``data`` with the state carried across windows.

    ``data`` is cut by :func:`stream_windows` into ``batch_size`` streams of consecutive windows;
    the model runs through them in order, each batch starting from the state the previous one
    ended in, so only the first character of each stream is predicted from a zero state. The loss
    averages all :math:`K N T` predictions (the few ids after the last full window of each stream
    are left out). With ``batch_size=1`` it is the loss of one forward pass over the whole text.
    Runs in eval mode without gradients and restores the model's previous mode.

    Args:
        model: a recurrent model as in :func:`train_step` whose ``forward(x, hidden)`` continues from ``hidden``.
        data: int64 ids ``(L,)`` with ``L >= batch_size * seq_len + 1``, on the model's device.
        seq_len: window length :math:`T` (memory only: the result does not depend on it, up to
            the ids left out at the ends of the streams).
        batch_size: the number of streams :math:`N` (default 16).

    Returns:
        The loss in nats per character (a float).

    Raises:
        TypeError: ``model`` is not a module or ``data`` is not an int64 tensor.
        ValueError: a size is not a positive integer or ``data`` is too short.
    """
    model = _check_model(model)
    x, y = stream_windows(data, batch_size, seq_len)
    was_training = model.training
    model.eval()
    total, hidden = 0.0, None
    with torch.no_grad():
        for xk, yk in zip(x, y):
            logits, hidden = model(xk, hidden)
            total += nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), yk.reshape(-1),
                                                 reduction="sum").item()
    model.train(was_training)
    return total / y.numel()


def perplexity(loss: float) -> float:
    r"""Perplexity :math:`\exp(L)` of a cross-entropy :math:`L` in nats per character.

    A model with perplexity :math:`P` is as uncertain as a uniform choice among :math:`P`
    characters; an untrained model over :math:`V` characters has :math:`L \approx \log V`, :math:`P \approx V`.

    Raises:
        TypeError: ``loss`` is not a finite real number.
        ValueError: ``loss`` is negative.
    """
    return math.exp(check_real("loss", loss, 0.0))


def evaluate_torch(model: nn.Module, data: torch.Tensor, *, seq_len: int, batch_size: int = 256) -> dict[str, float]:
    """``{"loss": evaluate_loss(...), "perplexity": exp(loss)}`` of ``model`` on ``data`` (the ``evaluate_*`` step).

    Arguments and errors as in :func:`evaluate_loss`; the loss is in nats per character.
    """
    loss = evaluate_loss(model, data, seq_len, batch_size=batch_size)
    return {"loss": loss, "perplexity": perplexity(loss)}


def known_word_fraction(text: str, reference: str) -> float:
    r"""The fraction of the words of ``text`` that also occur in ``reference``.

    A *word* is a maximal run of letters (``str.isalpha``), lowercased. The fraction counts
    word occurrences, not distinct words: :math:`\frac{1}{W} \sum_{w \in text} [w \in
    \mathrm{words}(reference)]`. A crude measure of generated text: greedy or low-temperature
    samples reuse real words, high-temperature samples invent new ones.

    Raises:
        TypeError: ``text`` or ``reference`` is not a str.
        ValueError: ``text`` contains no word.
    """
    def words(s: str) -> list[str]:
        return "".join(c.lower() if c.isalpha() else " " for c in s).split()

    found = words(_check_text("text", text))
    if not found:
        raise ValueError(f"`text` must contain at least one word. Received: text={text[:40]!r}")
    known = set(words(_check_text("reference", reference)))
    return sum(w in known for w in found) / len(found)


def sample(model: nn.Module, vocab: Vocabulary, prompt: str, length: int, temperature: float = 1.0,
           seed: int = 0) -> str:
    r"""Generate ``length`` characters after ``prompt``, one at a time, feeding each back in.

    The next character is drawn from :math:`\mathrm{softmax}(\mathrm{logits} / \tau)`: a temperature
    :math:`\tau < 1` sharpens the distribution (:math:`\tau \to 0` is greedy argmax decoding),
    :math:`\tau > 1` flattens it. Draws use a CPU ``torch.Generator`` seeded with ``seed``
    (``torch.multinomial``), so a seed reproduces the text for given logits on any device.

    Args:
        model: a :class:`CharLSTM`-like model (``forward(x, hidden)`` returning ``(logits, hidden)``).
        vocab: the :class:`Vocabulary` the model was trained with.
        prompt: at least one character, all in ``vocab``.
        length: number of characters to generate (``>= 0``).
        temperature: :math:`\tau > 0` (default 1.0).
        seed: seed of the generator (default 0; below ``2**32``).

    Returns:
        ``prompt`` followed by the ``length`` generated characters.

    Raises:
        TypeError: ``model``/``vocab``/``prompt`` has the wrong type; ``temperature`` is not a
            finite real number; ``seed`` is not an integer.
        ValueError: ``prompt`` is empty or has unknown characters; ``length`` is negative;
            ``temperature`` is not positive; ``seed`` is negative or too large.
    """
    model = _check_model(model)
    if not isinstance(vocab, Vocabulary):
        raise TypeError(f"`vocab` must be a Vocabulary. Received: vocab of type {type(vocab).__name__}")
    prompt = _check_text("prompt", prompt)
    if not prompt:
        raise ValueError("`prompt` must contain at least one character. Received: prompt=''")
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise ValueError(f"`length` must be a non-negative integer. Received: length={length!r}")
    temperature = check_real("temperature", temperature, 0.0, low_open=True)
    seed = _check_seed(seed)
    ids = vocab.encode(prompt)
    device = device_of(model)
    generator = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    out = ids.tolist()
    with torch.no_grad():
        logits, hidden = model(ids[None, :].to(device))
        for _ in range(length):
            probs = torch.softmax(logits[0, -1].double().cpu() / temperature, dim=-1)
            nxt = torch.multinomial(probs, 1, generator=generator)
            out.append(nxt.item())
            logits, hidden = model(nxt[None, :].to(device), hidden)
    model.train(was_training)
    return vocab.decode(out)
