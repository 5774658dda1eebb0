"""From-scratch speech features against librosa 0.11 on FSDD waveforms (float64)."""

import librosa  # the reference implementation (a dependency of the book extra)
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dlnotes.data import fetch
from dlnotes.scratch import speech as sp


KW = dict(sr=8000, n_fft=256, hop_length=80, n_mels=40)


@pytest.fixture(scope="module")
def waves():
    out = []
    for name in ("jackson", "nicolas", "theo"):
        with np.load(fetch(f"fsdd-{name}"), allow_pickle=False) as pack:
            o = pack["offsets"]
            for i in (0, 137, 499):
                out.append(pack["audio"][o[i]:o[i + 1]].astype(np.float64) / 32768.0)
    return out


def test_frames_match_librosa_util_frame(waves):
    y = waves[0]
    ours = sp.frame(y, n_fft=256, hop_length=80, center=False)
    ref = librosa.util.frame(y, frame_length=256, hop_length=80, axis=0)
    np.testing.assert_array_equal(ours, ref)


def test_hann_matches_scipy():
    from scipy.signal import get_window
    np.testing.assert_allclose(sp.hann_window(256), get_window("hann", 256, fftbins=True), rtol=0, atol=1e-15)


def test_power_spectrogram_matches_librosa_stft(waves):
    for y in waves:
        ref = np.abs(librosa.stft(y, n_fft=256, hop_length=80)) ** 2
        np.testing.assert_allclose(sp.power_spectrogram(y, n_fft=256, hop_length=80), ref, rtol=1e-9, atol=1e-12 * ref.max())


def test_mel_filterbank_matches_librosa():
    for sr, n_fft, n_mels in ((8000, 256, 40), (16000, 512, 64), (22050, 2048, 128)):
        ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, dtype=np.float64)
        np.testing.assert_allclose(sp.mel_filterbank(sr=sr, n_fft=n_fft, n_mels=n_mels), ref, rtol=1e-10, atol=1e-14)


@given(st.floats(0, 20000))
def test_mel_scale_round_trip_and_librosa(f):
    assert np.isclose(sp.mel_to_hz(sp.hz_to_mel(f)), f, rtol=1e-10, atol=1e-9)
    assert np.isclose(sp.hz_to_mel(f), librosa.hz_to_mel(f), rtol=1e-12, atol=1e-12)


def test_melspectrogram_matches_librosa(waves):
    for y in waves:
        # librosa.feature.melspectrogram builds a float32 filterbank: relative 1e-6 on its output...
        ref32 = librosa.feature.melspectrogram(y=y, **KW)
        np.testing.assert_allclose(sp.melspectrogram(y, **KW), ref32, rtol=1e-6, atol=1e-9 * ref32.max())
        # ...and 1e-9 against the same steps in float64
        fb = librosa.filters.mel(sr=8000, n_fft=256, n_mels=40, dtype=np.float64)
        ref = fb @ (np.abs(librosa.stft(y, n_fft=256, hop_length=80)) ** 2)
        np.testing.assert_allclose(sp.melspectrogram(y, **KW), ref, rtol=1e-9, atol=1e-12 * ref.max())


def test_power_to_db_matches_librosa(waves):
    m = sp.melspectrogram(waves[3], **KW)
    for top_db in (80.0, None):
        np.testing.assert_allclose(sp.power_to_db(m, top_db=top_db), librosa.power_to_db(m, top_db=top_db),
                                   rtol=0, atol=1e-10)


def test_mfcc_matches_librosa(waves):
    for y in waves:
        ref = librosa.feature.mfcc(y=y, n_mfcc=13, **KW)
        # the float32 filterbank inside librosa moves log-mel by < 1e-6 dB; the DCT keeps that scale
        np.testing.assert_allclose(sp.mfcc(y, n_mfcc=13, **KW), ref, rtol=0, atol=1e-5)
        fb = librosa.filters.mel(sr=8000, n_fft=256, n_mels=40, dtype=np.float64)
        ref64 = librosa.feature.mfcc(S=librosa.power_to_db(fb @ np.abs(librosa.stft(y, n_fft=256, hop_length=80)) ** 2),
                                     n_mfcc=13)
        np.testing.assert_allclose(sp.mfcc(y, n_mfcc=13, **KW), ref64, rtol=0, atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(st.integers(300, 3000), st.integers(1, 200))
def test_frame_count(n, hop):
    y = np.ones(n)
    assert sp.frame(y, n_fft=256, hop_length=hop).shape == (1 + n // hop, 256)
    assert sp.power_spectrogram(y, n_fft=256, hop_length=hop).shape == (129, 1 + n // hop)


def test_bad_signal():
    with pytest.raises(ValueError, match=r"`y` must be a non-empty 1-D array. Received: y.shape=\(2, 3\)"):
        sp.frame(np.zeros((2, 3)))


def test_short_signal():
    with pytest.raises(ValueError, match=r"`y` is shorter than `n_fft`. Received: len\(y\)=10, n_fft=256"):
        sp.frame(np.zeros(10), center=False)


def test_bad_n_fft():
    with pytest.raises(ValueError, match=r"`n_fft` must be a positive integer. Received: n_fft=0"):
        sp.hann_window(0)


def test_negative_power():
    with pytest.raises(ValueError, match=r"`s` must be a non-negative power. Received: min\(s\)=-1.0"):
        sp.power_to_db(np.array([1.0, -1.0]))


def test_too_many_mfcc():
    with pytest.raises(ValueError, match=r"`n_mfcc` must be at most `n_mels`. Received: n_mfcc=50, n_mels=40"):
        sp.mfcc(np.ones(1000), n_mfcc=50)
