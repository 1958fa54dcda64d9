"""Small media files written with PyAV: tones, speech-like signals, silent or audio-less video."""

from fractions import Fraction

import av
import cv2
import numpy as np


def tone(freq, seconds, rate, amplitude=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def speech_like(seconds, rate=16000, seed=0):
    """Voiced syllables (harmonics of a gliding pitch, vowel-like formant weights) and pauses."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    pitch = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    formant = 1 + np.sin(2 * np.pi * 3.1 * t)[None]
    voiced = sum(np.sin(k * phase) / k * (1 + formant[0] * (k % 3 == 0)) for k in range(1, 12))
    envelope = np.clip(np.sin(2 * np.pi * 2.5 * t), 0, None) ** 0.5
    signal = 0.2 * voiced * envelope + 0.01 * rng.standard_normal(len(t))
    return signal.astype(np.float32)


def write_media(path, channels, rate, audio_codec=None, video_codec=None, video_frames=10, size=(64, 48), fps=25,
                options=None):
    """Write ``channels`` (C x N float in [-1, 1]) with ``audio_codec``, and/or a moving test video."""
    channels = None if channels is None else np.atleast_2d(np.asarray(channels, np.float32))
    with av.open(str(path), "w", options=options or {}) as container:
        audio = video = None
        if audio_codec:
            layout = "mono" if channels.shape[0] == 1 else "stereo"
            audio = container.add_stream(audio_codec, rate=rate, layout=layout)
        if video_codec:
            video = container.add_stream(video_codec, rate=fps)
            video.width, video.height = size
            video.pix_fmt = "yuv420p"
        if video:
            for index in range(video_frames):
                image = np.zeros((size[1], size[0], 3), np.uint8)
                image[:, : (index * 5) % size[0]] = (40, 160, 220)
                for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    container.mux(packet)
            for packet in video.encode():
                container.mux(packet)
        if audio:
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(channels), format="fltp", layout=audio.layout.name)
            frame.sample_rate = rate
            for packet in audio.encode(frame):
                container.mux(packet)
            for packet in audio.encode():
                container.mux(packet)
    return path


def write_video(path, frames, rate=Fraction(25), rotation=None, pts=None, time_base=None, audio=None, sample_rate=16000):
    """BGR frames as near-lossless H.264 (crf 0, yuv420p via OpenCV's exact BT.601), with
    ``audio`` (mono float samples at ``sample_rate``) as AAC when given."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate, options={"crf": "0", "preset": "ultrafast"})
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        sound = container.add_stream("aac", rate=sample_rate, layout="mono") if audio is not None else None
        if time_base:
            stream.time_base = time_base
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420), format="yuv420p")
            if pts is not None:
                frame.pts, frame.time_base = pts[i], time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if sound is not None:
            samples = av.AudioFrame.from_ndarray(np.asarray(audio, np.float32)[None], format="fltp", layout="mono")
            samples.sample_rate, samples.pts = sample_rate, 0
            for packet in [*sound.encode(samples), *sound.encode()]:
                container.mux(packet)
    return path


def face_frames(count, size=(160, 128), seed=0, without_face=()):
    """Frames of a bright, textured "face" (every channel above 200) moving over a darker
    background (below 200), with a mouth that opens and closes; ``without_face``: frame indices
    showing only the background."""
    rng = np.random.default_rng(seed)
    width, height = size
    background = cv2.GaussianBlur(rng.integers(0, 170, (height, width, 3), dtype=np.uint8), (0, 0), 2)
    texture = rng.integers(215, 256, (70, 60, 3), dtype=np.uint8)
    frames = []
    for i in range(count):
        frame = np.roll(background, 3 * i, axis=1)
        if i not in without_face:
            x, y = width // 4 + int(10 * np.sin(i / 2)), height // 6 + int(6 * np.cos(i / 3))
            frame[y:y + 70, x:x + 60] = texture
            cv2.ellipse(frame, (x + 30, y + 52), (12, 2 + (i * 3) % 8), 0, 0, 360, (40, 30, 120), -1)
        frames.append(frame)
    return frames


def bright_box(frame, threshold=200):
    """The bounding box [x1, y1, x2, y2] of the pixels brighter than ``threshold`` in every channel."""
    ys, xs = np.nonzero(frame.min(axis=2) > threshold)
    if len(xs) < 50:
        return None
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


class BrightBoxDetector:
    """Stands in for S3FD on synthetic frames: the face is the bright box."""

    calls = []

    def __init__(self, device="cpu", weights_path=None, batch_size=None):
        self.batch_size = batch_size

    def detect(self, frames, select=None):
        """Like S3FDDetector.detect: one box or None per frame, or with ``select``, (k, 5) arrays."""
        BrightBoxDetector.calls.append(frames.shape)
        found = [None if (box := bright_box(f)) is None else np.array([*box, 0.99], np.float32) for f in frames]
        if select is None:
            return found
        return [np.zeros((0, 5), np.float32) if box is None else box[None] for box in found]
