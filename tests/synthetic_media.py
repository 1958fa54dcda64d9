"""Small media files written with PyAV: tones, speech-like signals, silent or audio-less video."""

import av
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
