"""Audio in, mel spectrogram out: the features Wav2Lip and its expert SyncNet were trained on.

The names and the numbers are the reference implementation's (hparams.py holds the values);
decoding goes through PyAV, so any file FFmpeg reads works, with no shell and no temporary files.

The pre-emphasis filter, the STFT and the mel filters are written out with NumPy: they equal
scipy's lfilter, librosa's stft and librosa's mel filters bit for bit (tests/test_audio.py
checks), and importing those costs about 2 s of start-up (scipy.signal, numba), longer than
the mel of a minute of speech.
"""

import functools

import av
import librosa
import numpy as np

from atomic_write import atomic_output
from errors import UserError
from hparams import hparams as hp
from media import open_media


def load_wav(path, sr):
    """The first audio stream of any FFmpeg-readable file as mono float32 at ``sr`` Hz.

    Channels are averaged and the result resampled as ``librosa.load(path, sr=sr)`` does.
    """
    native_rate, channels = _decode_audio(path)
    wav = channels.mean(axis=0) if channels.shape[0] > 1 else channels[0]
    if native_rate != sr:
        wav = librosa.resample(wav, orig_sr=native_rate, target_sr=sr)
    return np.ascontiguousarray(wav, dtype=np.float32)


def check_finite(samples, path):
    """Refuse audio holding NaN or infinite samples, in one line naming the file and which.

    Such samples make every mel frame they touch NaN (the generator then draws garbage, the
    AAC encoder refuses them); the cause is the file, so the message names it.
    """
    samples = np.asarray(samples)
    if np.isfinite(samples).all():
        return samples
    nan = int(np.isnan(samples).sum())
    inf = int(np.isinf(samples).sum())
    what = " and ".join(part for part in (f"{nan:,} NaN" * bool(nan), f"{inf:,} infinite" * bool(inf)) if part)
    raise UserError(f"{path}: the audio holds {what} sample(s) of {samples.size:,}; repair or re-export it")


def native_sample_rate(path):
    """The sample rate of the first audio stream, without decoding it."""
    with open_media(path, "audio") as container:
        return _audio_stream(container, path).rate


def _audio_stream(container, path):
    if not container.streams.audio:
        raise UserError(f"{path} has no audio stream")
    return container.streams.audio[0]


def _decode_audio(path):
    try:
        with open_media(path, "audio") as container:
            stream = _audio_stream(container, path)
            # Planar float keeps every channel apart, whatever the codec's own sample format.
            resampler = av.AudioResampler(format="fltp")
            chunks, rate = [], stream.rate
            for frame in container.decode(stream):
                rate = frame.sample_rate
                chunks.extend(out.to_ndarray() for out in resampler.resample(frame))
            chunks.extend(out.to_ndarray() for out in resampler.resample(None))
    except av.error.FFmpegError as error:
        raise UserError(f"cannot read audio from {path}: {error}") from None
    if sum(chunk.shape[1] for chunk in chunks) == 0:
        raise UserError(f"{path} has an audio stream with no samples")
    return rate, np.concatenate(chunks, axis=1)


def save_wav(wav, path, sr):
    """Peak-normalised 16-bit PCM, as the reference writes it (without scaling ``wav`` in place)."""
    from scipy.io import wavfile  # noqa: PLC0415 - here, as only writers need it

    wav = np.asarray(wav, dtype=np.float64) * (32767 / max(0.01, float(np.max(np.abs(wav)))))
    with atomic_output(path) as temporary:
        wavfile.write(temporary, sr, wav.astype(np.int16))


def extract_wav(source, path):
    """The first audio stream of ``source`` as 16-bit PCM WAV at its own rate and channels,
    as ``ffmpeg -i source path.wav`` writes it; written atomically."""
    from scipy.io import wavfile  # noqa: PLC0415

    rate, channels = _decode_audio(source)
    pcm = np.clip(np.round(channels.T * 32768.0), -32768, 32767).astype(np.int16)
    with atomic_output(path) as temporary:
        wavfile.write(temporary, rate, pcm[:, 0] if pcm.shape[1] == 1 else pcm)


def preemphasis(wav, k, preemphasize=True):
    """y[n] = x[n] - k x[n-1], in float64 (scipy.signal.lfilter([1, -k], [1], wav))."""
    if not preemphasize:
        return wav
    wav = np.asarray(wav, dtype=np.float64)
    out = wav.copy()
    out[1:] -= k * wav[:-1]
    return out


def get_hop_size():
    if hp.hop_size is not None:
        return hp.hop_size
    return int(hp.frame_shift_ms / 1000 * hp.sample_rate)


def melspectrogram(wav):
    """(num_mels, 1 + len(wav) // hop_size) normalised log-mel spectrogram, in [-4, 4]."""
    D = _stft(preemphasis(wav, hp.preemphasis, hp.preemphasize))
    S = _amp_to_db(_linear_to_mel(np.abs(D))) - hp.ref_level_db
    return _normalize(S) if hp.signal_normalization else S


def _stft(y):
    if hp.use_lws:
        raise ValueError("use_lws=True is not supported: the released models use librosa's STFT")
    # Reflect padding is what librosa did when the models were trained; since librosa 0.10 the
    # default is zero padding, which changes the first and last two frames.
    # librosa.stft(y, n_fft, hop_length, win_length, pad_mode="reflect"): centred frames of the
    # reflect-padded signal, a periodic Hann window, a real FFT per frame.
    n_fft, hop = hp.n_fft, get_hop_size()
    padded = np.pad(y, n_fft // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    spectrum = np.fft.rfft(frames * _hann_window(hp.win_size, n_fft), axis=1).T
    return spectrum.astype(np.complex64, copy=False) if y.dtype == np.float32 else spectrum


@functools.lru_cache(maxsize=2)
def _hann_window(length, n_fft):
    """The periodic Hann window of ``length`` centred in ``n_fft`` samples, computed as
    scipy.signal.get_window("hann", length) computes it."""
    angles = np.linspace(-np.pi, np.pi, length + 1)
    window = (0.5 + 0.5 * np.cos(angles))[:-1]
    left = (n_fft - length) // 2
    return np.pad(window, (left, n_fft - length - left))


def _linear_to_mel(spectrogram):
    return np.dot(_mel_basis(hp.sample_rate, hp.n_fft, hp.num_mels, hp.fmin, hp.fmax), spectrogram)


@functools.lru_cache(maxsize=4)
def _mel_basis(sample_rate, n_fft, num_mels, fmin, fmax):
    """Slaney's area-normalised triangular mel filters, float32, computed step for step as
    librosa.filters.mel(sr=, n_fft=, n_mels=, fmin=, fmax=) computes them."""
    if fmax > sample_rate // 2:
        raise ValueError(f"fmax {fmax} is above the Nyquist frequency of {sample_rate} Hz audio")
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), num_mels + 2))
    ramps = np.subtract.outer(edges, np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate))
    widths = np.diff(edges)
    weights = np.zeros((num_mels, 1 + n_fft // 2), dtype=np.float32)
    for i in range(num_mels):
        weights[i] = np.maximum(0, np.minimum(-ramps[i] / widths[i], ramps[i + 2] / widths[i + 1]))
    weights *= (2.0 / (edges[2:num_mels + 2] - edges[:num_mels]))[:, np.newaxis]
    return weights


# Slaney's mel scale: linear below 1 kHz, logarithmic above
_MEL_STEP_HZ, _LOG_HZ, _LOG_STEP = 200.0 / 3, 1000.0, np.log(6.4) / 27.0


def _hz_to_mel(hz):
    hz = np.asanyarray(hz)  # a scalar, as the filters need it
    mel = hz / _MEL_STEP_HZ
    return _LOG_HZ / _MEL_STEP_HZ + np.log(hz / _LOG_HZ) / _LOG_STEP if hz >= _LOG_HZ else mel


def _mel_to_hz(mels):
    hz = _MEL_STEP_HZ * mels
    log = mels >= _LOG_HZ / _MEL_STEP_HZ
    hz[log] = _LOG_HZ * np.exp(_LOG_STEP * (mels[log] - _LOG_HZ / _MEL_STEP_HZ))
    return hz


def _amp_to_db(x):
    min_level = np.exp(hp.min_level_db / 20 * np.log(10))
    return 20 * np.log10(np.maximum(min_level, x))


def _normalize(S):
    m, low = hp.max_abs_value, hp.min_level_db
    if hp.symmetric_mels:
        scaled = (2 * m) * ((S - low) / -low) - m
        return np.clip(scaled, -m, m) if hp.allow_clipping_in_normalization else scaled
    scaled = m * ((S - low) / -low)
    return np.clip(scaled, 0, m) if hp.allow_clipping_in_normalization else scaled
