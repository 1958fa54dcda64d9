"""LSE-D and LSE-C: how well a video's lips follow its audio, by the SyncNet of Chung & Zisserman.

As syncnet_python computes them for the Wav2Lip paper: at 25 fps and 16 kHz, every 5-frame
window of 224 x 224 frames and the 0.2 s of MFCCs beside it are embedded; for each audio
offset of -vshift..+vshift frames the Euclidean distances are averaged over the windows.
LSE-D is the smallest of these averages (lower is better), LSE-C their median minus that
minimum (higher is better), and the AV offset is vshift minus the index of the minimum: a
video whose sound comes d frames late scores offset -d.
"""

import dataclasses
import itertools
import math
from fractions import Fraction

import av
import cv2
import numpy as np
import torch
import torch.nn.functional as F
from scipy.fft import dct

import audio
from evaluation.metrics.syncnet import load_syncnet
from media.containers import probe_video, read_frames
from system.errors import UserError

VIDEO_FPS = 25
AUDIO_RATE = 16000
SAMPLES_PER_FRAME = AUDIO_RATE // VIDEO_FPS  # 640
WINDOW = 5  # frames the lip branch sees
MFCC_PER_FRAME = 4  # 10 ms MFCC steps per 40 ms frame
MFCC_WINDOW = 20  # steps the audio branch sees: 0.2 s
FRAME_SIZE = 224


# --- MFCCs exactly as python_speech_features.mfcc computes them with its defaults ------------

def mfcc(signal, rate=AUDIO_RATE, numcep=13, nfilt=26, nfft=512, preemph=0.97, ceplifter=22):
    """(steps, 13) MFCCs: 25 ms rectangular windows every 10 ms, 26 mel filters, log energy in c0.

    ``signal`` holds 16-bit sample values (as scipy reads a wav), not floats in [-1, 1]:
    the log energy depends on the scale.
    """
    signal = np.asarray(signal, dtype=np.float64)
    signal = np.append(signal[:1], signal[1:] - preemph * signal[:-1])
    length, step = int(_round_half_up(0.025 * rate)), int(_round_half_up(0.01 * rate))
    count = 1 if len(signal) <= length else 1 + math.ceil((len(signal) - length) / step)
    padded = np.concatenate([signal, np.zeros((count - 1) * step + length - len(signal))])
    frames = padded[np.arange(length)[None, :] + step * np.arange(count)[:, None]]
    power = np.abs(np.fft.rfft(frames, nfft)) ** 2 / nfft
    eps = np.finfo(float).eps
    energy = power.sum(axis=1)
    energy[energy == 0] = eps
    bands = power @ _mel_filters(nfilt, nfft, rate).T
    bands[bands == 0] = eps
    cepstra = dct(np.log(bands), type=2, axis=1, norm="ortho")[:, :numcep]
    cepstra *= 1 + (ceplifter / 2) * np.sin(np.pi * np.arange(numcep) / ceplifter)
    cepstra[:, 0] = np.log(energy)
    return cepstra


def _round_half_up(x):
    return math.floor(x + 0.5)


def _mel_filters(nfilt, nfft, rate):
    mels = np.linspace(0, 2595 * np.log10(1 + (rate / 2) / 700), nfilt + 2)
    bins = np.floor((nfft + 1) * (700 * (10 ** (mels / 2595) - 1)) / rate)
    filters = np.zeros((nfilt, nfft // 2 + 1))
    for j in range(nfilt):
        lo, mid, hi = int(bins[j]), int(bins[j + 1]), int(bins[j + 2])
        filters[j, lo:mid] = (np.arange(lo, mid) - bins[j]) / (bins[j + 1] - bins[j])
        filters[j, mid:hi] = (bins[j + 2] - np.arange(mid, hi)) / (bins[j + 2] - bins[j + 1])
    return filters


def pcm16(wav):
    """Float samples in [-1, 1] -> the 16-bit values ffmpeg's pcm_s16le would write, as float64."""
    return np.clip(np.round(np.asarray(wav, np.float64) * 32768), -32768, 32767)


# --- distances over offsets -----------------------------------------------------------------

@dataclasses.dataclass
class SyncScore:
    offset: int  # frames; negative: the sound comes late
    confidence: float  # LSE-C
    min_distance: float  # LSE-D
    distances: list  # the mean distance at each offset -vshift..+vshift
    windows: int  # 5-frame windows scored


def offset_distances(lip, aud, vshift):
    """(2 vshift + 1,) mean distance between lip feature i and audio feature i + k - vshift.

    Audio features beyond either end are zeros, as syncnet_python pads them.
    """
    padded = F.pad(aud, (0, 0, vshift, vshift))
    count = len(lip)
    return torch.stack([F.pairwise_distance(lip, padded[k:k + count]).mean() for k in range(2 * vshift + 1)])


def sync_score(distances, vshift):
    distances = distances.float().cpu()
    minimum, index = torch.min(distances, 0)
    return SyncScore(offset=int(vshift - index), confidence=float(torch.median(distances) - minimum),
                     min_distance=float(minimum), distances=[float(d) for d in distances], windows=0)


# --- scoring videos ----------------------------------------------------------------------------

class JpegRoundTrip:
    """Frames as the reference reads them back from ``ffmpeg -i video %06d.jpg``.

    ffmpeg's defaults for that command: the mjpeg encoder at 200 kb/s under rate control, in
    full-range YUV 4:2:0; OpenCV (libjpeg) decodes the files. One instance per video: the
    rate control carries over from frame to frame.
    """

    def __init__(self):
        self.encoder = None

    def __call__(self, frame_bgr):
        height, width = frame_bgr.shape[:2]
        if self.encoder is None:
            self.encoder = av.CodecContext.create("mjpeg", "w")
            self.encoder.width, self.encoder.height = width, height
            self.encoder.pix_fmt = "yuvj420p"
            self.encoder.time_base = Fraction(1, VIDEO_FPS)
            self.encoder.framerate = Fraction(VIDEO_FPS)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame_bgr), format="bgr24").reformat(format="yuvj420p")
        packets = self.encoder.encode(frame)
        return cv2.imdecode(np.frombuffer(bytes(packets[0]), np.uint8), cv2.IMREAD_COLOR)


@dataclasses.dataclass
class VideoInput:
    """What scoring a video had to do to it, for the report."""

    fps: float
    sample_rate: int
    frames: int = 0
    samples: int = 0

    def notes(self):
        """{what was done (the same words for every video): what, for this video}."""
        notes = {}
        if abs(self.fps - VIDEO_FPS) > 1e-3:
            notes[f"frames resampled to {VIDEO_FPS} fps"] = f"{self.fps:g} fps resampled to {VIDEO_FPS} fps"
        if self.sample_rate != AUDIO_RATE:
            notes[f"audio resampled to {AUDIO_RATE} Hz"] = f"{self.sample_rate} Hz audio resampled to {AUDIO_RATE} Hz"
        # Less than a frame apart (an AAC encoder's padding) is no note: windows are whole frames.
        if abs(self.frames * SAMPLES_PER_FRAME - self.samples) >= SAMPLES_PER_FRAME:
            notes["audio and video lengths differ by a frame or more (only the shorter length is scored)"] = \
                f"audio {self.samples / AUDIO_RATE:.3f} s and video {self.frames / VIDEO_FPS:.3f} s differ"
        return notes


class LSEScorer:
    """The released ``syncnet_v2.model`` on a device, scoring videos or (frames, audio) pairs."""

    def __init__(self, model_path, device="cpu", batch_size=20, vshift=15):
        self.device = torch.device(device)
        self.model = load_syncnet(model_path, self.device)
        self.batch_size, self.vshift = batch_size, vshift

    def score_video(self, path, jpeg_roundtrip=True):
        """(SyncScore, VideoInput) of a video file with its own audio track, at 25 fps and 16 kHz."""
        info = probe_video(path)
        source = VideoInput(float(info.fps), audio.native_sample_rate(path))
        wav = audio.load_wav(path, AUDIO_RATE)
        decoded = _Counter(read_frames(path, fps=VIDEO_FPS))
        score = self.score(map(JpegRoundTrip(), decoded) if jpeg_roundtrip else decoded, wav)
        source.frames = decoded.count + sum(1 for _ in decoded)  # the frames past the audio, for the report
        source.samples = len(wav)
        return score, source

    @torch.no_grad()
    def score(self, frames, wav):
        """SyncScore of BGR frames at 25 fps (any size; an iterable is read lazily) and 16 kHz float audio."""
        signal = pcm16(wav)
        usable = len(signal) // SAMPLES_PER_FRAME
        lip = self._lip_features(itertools.islice(frames, usable))
        windows = len(lip)
        if windows < 1:
            raise UserError(f"too short to score: {WINDOW + 1} frames (0.24 s) of video and audio are needed")
        aud = self._audio_features(mfcc(signal), windows)
        score = sync_score(offset_distances(lip, aud, self.vshift), self.vshift)
        score.windows = windows
        return score

    def _audio_features(self, cepstra, windows):
        """Features of MFCC steps 4v .. 4v+19 for the windows v = 0 .. windows-1, in batches."""
        cepstra = torch.from_numpy(cepstra.T.astype(np.float32))  # (13, steps)
        features = []
        for start in range(0, windows, self.batch_size):
            steps = [cepstra[:, v * MFCC_PER_FRAME:v * MFCC_PER_FRAME + MFCC_WINDOW]
                     for v in range(start, min(start + self.batch_size, windows))]
            features.append(self.model.forward_aud(torch.stack(steps).unsqueeze(1).to(self.device)))
        return torch.cat(features)

    def _lip_features(self, frames):
        """Features of the windows starting at 0 .. N-6 for N frames (the last frame is never used, as in the reference)."""
        features, buffer = [], []
        for frame in frames:
            buffer.append(cv2.resize(frame, (FRAME_SIZE, FRAME_SIZE)))
            if len(buffer) == self.batch_size + WINDOW - 1:
                features.append(self._embed_windows(buffer))
                buffer = buffer[-(WINDOW - 1):]
        if len(buffer) >= WINDOW:
            features.append(self._embed_windows(buffer))
        if not features:
            return torch.zeros(0, 1)
        return torch.cat(features)[:-1]

    def _embed_windows(self, frames):
        clip = torch.from_numpy(np.stack(frames)).to(self.device).permute(3, 0, 1, 2).float()  # (3, F, 224, 224)
        windows = torch.stack([clip[:, v:v + WINDOW] for v in range(len(frames) - WINDOW + 1)])
        return self.model.forward_lip(windows)


class _Counter:
    """An iterator that counts what it hands out."""

    def __init__(self, items):
        self.items, self.count = iter(items), 0

    def __iter__(self):
        return self

    def __next__(self):
        item = next(self.items)
        self.count += 1
        return item
