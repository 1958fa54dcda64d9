"""One live session: the browser's microphone in over WebRTC, lip-synced frames and their
audio back in one media stream (the browser keeps them in sync), and each frame's index and
speaking flag on the page's data channel."""

import asyncio
import fractions
import json
import secrets
import sys
import threading
import time

import numpy as np
from aiortc import MediaStreamTrack, RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame

import audio
from lipsync.stream_run import StreamSummary

VIDEO_CLOCK = 90000  # RTP's clock for video
QUEUED_SECONDS = 2.0  # frames waiting for a slow encoder at most; older ones are dropped
OPUS_RATE, OPUS_FRAME = 48000, 960  # 20 ms
AHEAD_SECONDS = 2.0  # microphone audio beyond this ahead of the wall clock is dropped (a flood)


class FrameTrack(MediaStreamTrack):
    """Outgoing frames (video or audio) in the order the stream leaves them."""

    def __init__(self, kind, on_sent=None):
        super().__init__()
        self.kind, self.on_sent, self.queue = kind, on_sent, asyncio.Queue()

    def put(self, item, limit):
        while self.queue.qsize() >= limit:  # a client too slow to take them: drop the oldest
            self.queue.get_nowait()
        self.queue.put_nowait(item)

    async def recv(self):
        item = await self.queue.get()
        if item is None:
            self.stop()
            raise MediaStreamError
        frame, meta = item
        if self.on_sent is not None:
            self.on_sent(meta)
        return frame


class LiveSession:
    """A peer connection and the LipSyncStream behind it; ``close()`` ends both and prints the
    session line. A session whose microphone sends nothing for ``timeout`` seconds (a closed
    tab, a lost network) is closed."""

    def __init__(self, stream, timeout, on_closed, stun=()):
        self.id = secrets.token_hex(4)
        self.stream = stream
        self.timeout, self.on_closed = timeout, on_closed
        self.summary = StreamSummary(None)
        # No STUN server unless one is given (aiortc's default is Google's): on loopback and a
        # LAN the host candidates are enough, and offline a STUN query only delays the answer.
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[RTCIceServer(url) for url in stun]))
        self.video = FrameTrack("video", self._sent)
        self.sound = FrameTrack("audio")
        self.channel, self.listening, self.delivering, self.closing = None, None, None, None
        self.bad_chunks, self.pushed_seconds, self.first_push_at, self.dropped_seconds = 0, 0.0, None, 0.0

    async def answer(self, sdp, kind):
        """The server's answer to the browser's offer; the session runs from here."""
        pc, loop = self.pc, asyncio.get_running_loop()

        @pc.on("track")
        def on_track(track):
            if track.kind == "audio" and self.listening is None:
                self.listening = asyncio.ensure_future(self._listen(track))

        @pc.on("datachannel")
        def on_datachannel(channel):
            self.channel = channel

        @pc.on("connectionstatechange")
        async def on_state():
            if pc.connectionState in ("failed", "closed"):
                await self.close()

        await pc.setRemoteDescription(RTCSessionDescription(sdp, kind))
        pc.addTrack(self.video)
        pc.addTrack(self.sound)
        await pc.setLocalDescription(await pc.createAnswer())
        self.delivering = threading.Thread(target=self._deliver, args=(loop,), name=f"session {self.id}", daemon=True)
        self.delivering.start()
        if self.listening is None:  # an offer without a microphone: nothing will come
            self.listening = asyncio.ensure_future(self._listen(None))
        return {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type, "session": self.id}

    async def _listen(self, track):
        """The microphone's frames into the stream, until it ends or falls silent for good."""
        try:
            while True:
                try:
                    if track is None:
                        raise MediaStreamError
                    frame = await asyncio.wait_for(track.recv(), self.timeout)
                except (TimeoutError, MediaStreamError):
                    break
                self._push(frame)
        finally:
            await self.close()

    def _push(self, frame):
        """One microphone frame into the stream: odd audio is skipped, and audio that comes
        faster than it can be spoken (a peer flooding the server) is dropped, not queued."""
        now, seconds = time.monotonic(), frame.samples / max(1, frame.sample_rate or 1)
        self.first_push_at = self.first_push_at or now
        if self.pushed_seconds > now - self.first_push_at + AHEAD_SECONDS:
            if not self.dropped_seconds:
                print(f"session {self.id}: audio comes faster than real time: dropped", file=sys.stderr, flush=True)
            self.dropped_seconds += seconds
            return
        try:
            self.stream.push_audio(mono(frame), frame.sample_rate)
            self.pushed_seconds += seconds
        except ValueError as error:  # the stream goes on
            if not self.bad_chunks:
                print(f"session {self.id}: audio skipped ({error})", file=sys.stderr, flush=True)
            self.bad_chunks += 1

    def _deliver(self, loop):
        """In a thread: each frame as it leaves the stream, to the tracks."""
        limit = max(2, int(QUEUED_SECONDS * self.stream.fps))
        try:
            for picture, meta, sounds in media_frames(self.stream):
                loop.call_soon_threadsafe(self.video.put, (picture, meta), limit)
                for sound in sounds:
                    loop.call_soon_threadsafe(self.sound.put, (sound, None), 2 * limit)
        except Exception as error:  # noqa: BLE001 - the session ends in one line; the server goes on
            print(f"session {self.id}: the stream failed: {error}", file=sys.stderr, flush=True)
            asyncio.run_coroutine_threadsafe(self.close(), loop)
        finally:
            for track in (self.video, self.sound):
                loop.call_soon_threadsafe(track.queue.put_nowait, None)

    def _sent(self, meta):
        """A frame handed to the video encoder: counted, and its flag told to the page."""
        self.summary.frames += 1
        if meta["speaking"]:
            self.summary.speaking += 1
            self.summary.latencies.append(meta["latency"])
        if self.channel is not None and self.channel.readyState == "open":
            self.channel.send(json.dumps({"index": meta["index"], "speaking": meta["speaking"]}))

    async def close(self):
        """End the session: the stream's threads, the tracks and the connection. Every caller
        waits for the one closing."""
        if self.closing is None:
            self.closing = asyncio.ensure_future(self._close())
        await asyncio.shield(self.closing)

    async def _close(self):
        for step in (self._stop_stream, self._stop_tracks, self.pc.close):  # each, whatever the one before did
            try:
                await step()
            except Exception as error:  # noqa: BLE001 - said in one line; the rest still closes
                print(f"session {self.id}: closing: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        print(f"session {self.id}: {self.summary.line(sent=True)}", flush=True)
        self.on_closed(self)

    async def _stop_stream(self):
        await in_thread(self.stream.stop)  # joins the generator's threads
        if self.delivering is not None:
            await in_thread(self.delivering.join)

    async def _stop_tracks(self):
        if self.listening is not None:
            self.listening.cancel()  # (a listener that asked for the close waits behind the shield)
        self.video.stop()
        self.sound.stop()


def media_frames(stream):
    """(video frame, its meta, audio frames) for each frame of ``stream`` as it leaves: the
    picture at RTP's 90 kHz clock, the audio as 20-ms frames at 48 kHz (Opus's own: aiortc
    sends what one audio frame encodes to under one timestamp, so a frame must not make two
    packets)."""
    upsample, pending, sent = audio.Resampler(stream.sample_rate, OPUS_RATE), np.zeros(0, np.float32), 0
    for frame in stream:
        picture = VideoFrame.from_ndarray(frame.image, format="bgr24")
        picture.pts = round(frame.index * VIDEO_CLOCK / stream.fps)
        picture.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        pending, sounds = np.concatenate([pending, upsample.push(frame.audio)]), []
        while len(pending) >= OPUS_FRAME:
            sound = AudioFrame.from_ndarray(pcm16(pending[:OPUS_FRAME])[None], format="s16", layout="mono")
            sound.sample_rate, sound.pts, sound.time_base = OPUS_RATE, sent, fractions.Fraction(1, OPUS_RATE)
            pending, sent = pending[OPUS_FRAME:], sent + OPUS_FRAME
            sounds.append(sound)
        yield picture, {"index": frame.index, "speaking": frame.speaking, "latency": frame.latency}, sounds


async def in_thread(function):
    """``function()`` in a thread of its own, which ends with it (a pool's would stay)."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def run():
        try:
            result = function()
        except BaseException as error:  # noqa: BLE001 - raised in the awaiting task
            loop.call_soon_threadsafe(done.set_exception, error)
        else:
            loop.call_soon_threadsafe(done.set_result, result)

    threading.Thread(target=run, daemon=True).start()
    return await done


def mono(frame):
    """A decoded audio frame's samples, mono, as int16 or float32."""
    samples = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if frame.format.is_planar:
        samples = samples.reshape(channels, -1)
    else:  # packed: one row of interleaved samples
        samples = samples.reshape(-1, channels).T
    if channels == 1:
        return samples[0]
    return samples.astype(np.float32).mean(axis=0) / (32768 if samples.dtype == np.int16 else 1)


def pcm16(samples):
    return np.rint(np.clip(samples, -1, 1) * 32767).astype(np.int16)
