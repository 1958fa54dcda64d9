"""A live session's audio path, in the process: whatever the microphone's frames hold, the
stream gets mono samples at their rate, odd ones are skipped, and the session goes on."""

import asyncio

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError

from serving.live import LiveSession, mono, pcm16


def audio_frame(samples, layout, fmt, rate):
    """An av.AudioFrame of ``samples`` (channels x n)."""
    planar = fmt.endswith("p")
    data = samples if planar else samples.T.reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt, layout=layout)
    frame.sample_rate = rate
    return frame


def test_mono_averages_the_channels_of_packed_and_planar_frames():
    rng = np.random.default_rng(0)
    stereo = rng.integers(-20000, 20000, (2, 960)).astype(np.int16)
    expected = stereo.astype(np.float32).mean(axis=0) / 32768
    assert np.allclose(mono(audio_frame(stereo, "stereo", "s16", 48000)), expected)
    assert np.allclose(mono(audio_frame(stereo, "stereo", "s16p", 48000)), expected)
    floats = rng.uniform(-1, 1, (2, 441)).astype(np.float32)
    assert np.allclose(mono(audio_frame(floats, "stereo", "fltp", 44100)), floats.mean(axis=0))
    one = stereo[:1]
    got = mono(audio_frame(one, "mono", "s16", 16000))
    assert got.dtype == np.int16 and np.array_equal(got, one[0])
    assert np.array_equal(pcm16(np.array([0, 1, -1, 2, np.float32(0.5)], np.float32)), [0, 32767, -32767, 32767, 16384])


class Track:
    kind = "audio"

    def __init__(self, frames):
        self.frames = list(frames)

    async def recv(self):
        if not self.frames:
            raise MediaStreamError
        return self.frames.pop(0)


class Stream:
    """What the session needs of a LipSyncStream; refuses chunks as push_audio does."""

    fps, sample_rate = 25.0, 16000

    def __init__(self):
        self.pushed, self.stopped = [], 0

    def push_audio(self, samples, rate):
        if len(samples) == 3:
            raise ValueError("push_audio: an odd chunk")
        self.pushed.append((len(samples), rate))

    def stop(self):
        self.stopped += 1


def test_odd_microphone_frames_are_skipped_and_the_session_goes_on(capsys):
    closed = []
    stream = Stream()
    frames = [audio_frame(np.zeros((2, 960), np.int16), "stereo", "s16", 48000),
              audio_frame(np.full((1, 441), np.nan, np.float32), "mono", "flt", 44100),  # NaN: the stream's to handle
              audio_frame(np.zeros((1, 3), np.int16), "mono", "s16", 8000),  # refused by the stream
              audio_frame(np.zeros((1, 3), np.int16), "mono", "s16", 8000),
              audio_frame(np.zeros((2, 160), np.float32), "stereo", "fltp", 16000)]

    async def run():
        session = LiveSession(stream, timeout=5, on_closed=closed.append)
        await session._listen(Track(frames))
        await session.close()  # a second close does nothing
        return session

    session = asyncio.run(run())
    assert stream.pushed == [(960, 48000), (441, 44100), (160, 16000)]
    assert stream.stopped == 1 and closed == [session] and session.bad_chunks == 2
    out = capsys.readouterr()
    assert out.err.count("audio skipped") == 1
    assert out.out.count(f"session {session.id}: 0 frames sent, 0 speaking, latency p50 - ms p95 - ms\n") == 1


def test_a_microphone_that_falls_silent_ends_the_session(capsys):
    class Stalled(Track):
        async def recv(self):
            await asyncio.sleep(60)

    stream = Stream()

    async def run():
        session = LiveSession(stream, timeout=0.2, on_closed=lambda _: None)
        await asyncio.wait_for(session._listen(Stalled([])), 10)
        return session

    session = asyncio.run(run())
    assert stream.stopped == 1 and capsys.readouterr().out.count(f"session {session.id}: 0 frames sent") == 1
