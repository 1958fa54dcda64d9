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


# What the colour tags mean, written out here independently of the project's conversion:
# (Kr, Kb) of each matrix code, and the limited-range scale and offsets of Rec. 601/709.
LUMA_WEIGHTS = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}


def to_planes(image, matrix, full_range):
    """BGR float -> (Y, U, V) uint8 4:2:0 planes (chroma: 2x2 block means), by the textbook formulas."""
    kr, kb = LUMA_WEIGHTS[matrix]
    b, g, r = (image[..., c].astype(np.float64) for c in range(3))
    luma = kr * r + (1 - kr - kb) * g + kb * b
    cb, cr = (b - luma) / (2 * (1 - kb)), (r - luma) / (2 * (1 - kr))
    if full_range:
        y, u, v = luma, 128 + cb, 128 + cr
    else:
        y, u, v = 16 + luma * 219 / 255, 128 + cb * 224 / 255, 128 + cr * 224 / 255
    blocks = lambda plane: plane.reshape(plane.shape[0] // 2, 2, plane.shape[1] // 2, 2).mean(axis=(1, 3))
    return tuple(np.clip(np.rint(p), 0, 255).astype(np.uint8) for p in (y, blocks(u), blocks(v)))


def from_planes(y, u, v, matrix, full_range):
    """(Y, U, V) 4:2:0 planes -> BGR float, each chroma sample covering its 2x2 block."""
    kr, kb = LUMA_WEIGHTS[matrix]
    u, v = (np.repeat(np.repeat(p.astype(np.float64), 2, axis=0), 2, axis=1) for p in (u, v))
    if full_range:
        luma, cb, cr = y.astype(np.float64), u - 128, v - 128
    else:
        luma, cb, cr = (y - 16.0) * 255 / 219, (u - 128) * 255 / 224, (v - 128) * 255 / 224
    r, b = luma + 2 * (1 - kr) * cr, luma + 2 * (1 - kb) * cb
    g = (luma - kr * r - kb * b) / (1 - kr - kb)
    return np.stack([b, g, r], axis=-1)


def natural_frames(count, size=(128, 96), seed=0):
    """Camera-like BGR frames: smooth colour fields, fine texture and a bright face-like patch,
    moving a little from frame to frame (values kept inside 8..247, as footage mostly is)."""
    rng = np.random.default_rng(seed)
    width, height = size
    field = cv2.resize(rng.uniform(30, 220, (6, 8, 3)), (width + 64, height), interpolation=cv2.INTER_CUBIC)
    grain = rng.normal(0, 6, (height, width + 64, 3))
    frames = []
    for i in range(count):
        frame = (field + grain)[:, 2 * i:2 * i + width].copy()
        cv2.ellipse(frame, (width // 2 + i, height // 2), (width // 6, height // 4), 0, 0, 360, (150, 170, 225), -1)
        frames.append(np.clip(frame, 8, 247))
    return frames


def write_tagged_video(path, frames, pix_fmt="yuv420p", matrix="bt601", full_range=False, tags=(6, 1, 6, 6)):
    """BGR float frames as lossless H.264 in ``pix_fmt``, converted by the textbook formulas for
    ``matrix`` and range, with the stream tagged (colorspace, range, primaries, transfer) = ``tags``."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"crf": "0", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        context = stream.codec_context
        context.colorspace, context.color_range, context.color_primaries, context.color_trc = tags
        for image in frames:
            y, u, v = to_planes(image, matrix, full_range)
            i420 = np.concatenate([y.ravel(), u.ravel(), v.ravel()]).reshape(-1, width)
            for packet in stream.encode(av.VideoFrame.from_ndarray(i420, format=pix_fmt)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def read_planes(path):
    """Each frame's (Y, U, V) planes as stored, and the stream's (colorspace, range, primaries, transfer)."""
    with av.open(str(path)) as container:
        planes, tags = [], None
        for frame in container.decode(video=0):
            tags = (frame.colorspace, frame.color_range, frame.color_primaries, frame.color_trc)
            planes.append(tuple(np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, :p.width].copy()
                                for p in frame.planes))
    return planes, tags


def textbook_bgr(path):
    """Each frame of a 4:2:0 video as BGR uint8, decoded by the textbook formulas for its tags
    (BT.709 when tagged so, else BT.601; full range when tagged so, else limited)."""
    planes, (matrix, colour_range, _, _) = read_planes(path)
    return [np.clip(np.rint(from_planes(*frame, "bt709" if matrix == 1 else "bt601", colour_range == 2)), 0, 255)
            .astype(np.uint8) for frame in planes]


def silent_flac(path, seconds, rate=16000, block=1 << 16):
    """``seconds`` of 16-bit mono silence as FLAC, encoded a block at a time (an hour: 0.7 MB, 3 s)."""
    zeros, left = np.zeros((1, block), np.int16), int(seconds * rate)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("flac", rate=rate, layout="mono")
        while left:
            count = min(block, left)
            left -= count
            frame = av.AudioFrame.from_ndarray(zeros[:, :count], format="s16", layout="mono")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path
