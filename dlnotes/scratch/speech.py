"""Speech features from scratch in NumPy/SciPy: frames, window, STFT power, mel filterbank, log-mel, MFCC.

Every function follows librosa's defaults (``center=True`` with zero padding, a periodic Hann
window, Slaney's mel scale and area normalisation, ``power_to_db`` with ``ref=1``,
``amin=1e-10``, ``top_db=80``, an orthonormal DCT-II), so the results match
``librosa.feature.melspectrogram`` / ``librosa.feature.mfcc`` to float64 rounding
(tests/scratch/test_speech.py).
"""

from __future__ import annotations

import numpy as np
from scipy.fft import dct

from dlnotes._checks import check_positive_int, check_positive_float, check_float_array

__all__ = ["frame", "hann_window", "power_spectrogram", "hz_to_mel", "mel_to_hz", "mel_filterbank",
           "melspectrogram", "power_to_db", "mfcc"]


def _check_signal(name, y):
    y = check_float_array(name, y)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"`{name}` must be a non-empty 1-D array. Received: {name}.shape={y.shape}")
    return y


def frame(y, *, n_fft: int = 256, hop_length: int = 80, center: bool = True) -> np.ndarray:
    """Cut ``y`` (T,) into overlapping frames (n_frames, n_fft), frame t = y_pad[t*hop : t*hop + n_fft].

    With ``center`` the signal is zero-padded by n_fft // 2 on both sides (librosa's default), so
    n_frames = 1 + T // hop_length.
    """
    y = _check_signal("y", y)
    n_fft = check_positive_int("n_fft", n_fft)
    hop_length = check_positive_int("hop_length", hop_length)
    if center:
        y = np.pad(y, n_fft // 2, mode="constant")
    if y.size < n_fft:
        raise ValueError(f"`y` is shorter than `n_fft`. Received: len(y)={y.size}, n_fft={n_fft}")
    n_frames = 1 + (y.size - n_fft) // hop_length
    idx = np.arange(n_fft)[None, :] + hop_length * np.arange(n_frames)[:, None]
    return y[idx]


def hann_window(n_fft: int) -> np.ndarray:
    """Periodic Hann window w[n] = 0.5 - 0.5 cos(2 pi n / N), n = 0..N-1, shape (N,)."""
    n_fft = check_positive_int("n_fft", n_fft)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)


def power_spectrogram(y, *, n_fft: int = 256, hop_length: int = 80) -> np.ndarray:
    """|STFT|^2, S[f, t] = |sum_n w[n] x_t[n] exp(-2 pi i f n / N)|^2, shape (1 + n_fft // 2, n_frames)."""
    frames = frame(y, n_fft=n_fft, hop_length=hop_length)
    spectrum = np.fft.rfft(frames * hann_window(n_fft)[None, :], axis=1)
    return (spectrum.real ** 2 + spectrum.imag ** 2).T


def hz_to_mel(f):
    """Slaney's mel scale: linear below 1 kHz (m = 3f / 200), logarithmic above (27 / ln 6.4 per octave)."""
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-300) / min_log_hz) / logstep, f / f_sp)


def mel_to_hz(m):
    """Inverse of :func:`hz_to_mel`."""
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filterbank(*, sr: int = 8000, n_fft: int = 256, n_mels: int = 40) -> np.ndarray:
    """Triangular filters (n_mels, 1 + n_fft // 2), centres equally spaced in mel from 0 to sr / 2.

    Filter m rises linearly from f[m] to f[m+1] and falls to f[m+2]; it is scaled by
    2 / (f[m+2] - f[m]) so every filter has the same area (Slaney normalisation).
    """
    sr, n_fft, n_mels = (check_positive_int(k, v) for k, v in (("sr", sr), ("n_fft", n_fft), ("n_mels", n_mels)))
    fft_freqs = np.fft.rfftfreq(n_fft, d=1.0 / sr)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2.0), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    return weights * (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]


def melspectrogram(y, *, sr: int = 8000, n_fft: int = 256, hop_length: int = 80, n_mels: int = 40) -> np.ndarray:
    """Mel power spectrogram M = W S, shape (n_mels, n_frames)."""
    return mel_filterbank(sr=sr, n_fft=n_fft, n_mels=n_mels) @ power_spectrogram(y, n_fft=n_fft, hop_length=hop_length)


def power_to_db(s, *, amin: float = 1e-10, top_db: float | None = 80.0) -> np.ndarray:
    """10 log10(max(s, amin)) (ref = 1), then floored at max - top_db, same shape as ``s``."""
    s = check_float_array("s", s)
    if np.any(s < 0):
        raise ValueError(f"`s` must be a non-negative power. Received: min(s)={float(s.min())!r}")
    amin = check_positive_float("amin", amin)
    db = 10.0 * np.log10(np.maximum(amin, s))
    if top_db is not None:
        top_db = check_positive_float("top_db", top_db)
        db = np.maximum(db, db.max() - top_db)
    return db


def mfcc(y, *, sr: int = 8000, n_mfcc: int = 13, n_fft: int = 256, hop_length: int = 80, n_mels: int = 40) -> np.ndarray:
    """MFCC: orthonormal DCT-II of the log-mel spectrogram along the mel axis, first n_mfcc rows, (n_mfcc, n_frames).

    c[k, t] = s_k sum_m L[m, t] cos(pi k (2m + 1) / (2M)), s_0 = sqrt(1/M), s_k = sqrt(2/M).
    """
    n_mfcc = check_positive_int("n_mfcc", n_mfcc)
    if n_mfcc > n_mels:
        raise ValueError(f"`n_mfcc` must be at most `n_mels`. Received: n_mfcc={n_mfcc}, n_mels={n_mels}")
    log_mel = power_to_db(melspectrogram(y, sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels))
    return dct(log_mel, type=2, axis=0, norm="ortho")[:n_mfcc]
