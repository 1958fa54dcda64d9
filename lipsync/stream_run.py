"""stream.py's work: speech from a file or standard input, pushed as it is spoken, and the
lip-synced stream written to an mp4 as it goes (frames are not kept: memory stays flat)."""

import dataclasses
import itertools
import sys
import threading
import time
from pathlib import Path

import numpy as np

import audio
from lipsync.pipeline import encoder_threads
from lipsync.progress import frame_bar
from lipsync.stream import LipSyncStream
from media.containers import VideoWriter
from media.provenance import ContentCredentials, lip_sync_metadata
from system.atomic_write import check_output, check_writable
from system.errors import UserError

CHUNK_SECONDS = 0.02  # what a microphone or a WebRTC track hands over at a time


@dataclasses.dataclass
class StreamSummary:
    outfile: Path
    frames: int = 0
    speaking: int = 0
    seconds: float = 0.0
    latencies: list = dataclasses.field(default_factory=list)  # seconds, of the speaking frames

    def line(self, sent=False):
        """``N frames[ sent], M speaking, latency p50 x ms p95 y ms`` (latency: speaking frames)."""
        if self.latencies:
            p50, p95 = (1000 * float(np.percentile(self.latencies, q)) for q in (50, 95))
            latency = f"latency p50 {p50:.0f} ms p95 {p95:.0f} ms"
        else:
            latency = "latency p50 - ms p95 - ms"  # no speaking frame
        return f"{self.frames} frames{' sent' if sent else ''}, {self.speaking} speaking, {latency}"


def file_chunks(path, seconds=CHUNK_SECONDS):
    """(rate, mono float32 chunk of ``seconds``) of a media file's first audio track; a file
    that cannot be read is refused here, before the stream opens."""
    blocks = audio.channel_blocks(path)
    first = next(blocks)

    def chunks():
        for rate, block in itertools.chain([first], blocks):
            mono = block.mean(axis=0) if block.shape[0] > 1 else block[0]
            size = max(1, round(rate * seconds))
            for start in range(0, len(mono), size):
                yield rate, mono[start:start + size]

    return chunks()


def raw_chunks(handle, rate, seconds=CHUNK_SECONDS):
    """(rate, int16 chunk) of raw signed 16-bit little-endian mono PCM read from ``handle``."""
    size, left = 2 * max(1, round(rate * seconds)), b""
    while True:
        data = handle.read(size - len(left))
        if not data:
            return
        data, left = left + data, b""
        if len(data) % 2:
            data, left = data[:-1], data[-1:]
        if data:
            yield rate, np.frombuffer(data, "<i2")


def stream_to_file(options, chunks, realtime=True, paced=False, silence_db=None, delay=None):
    """Lip-sync ``options.face`` to the audio ``chunks`` give ((rate, samples) pairs), as a
    stream, into ``options.outfile``; ``paced``: push each chunk at the moment it would be
    spoken (a file read as a microphone would give it). Returns a StreamSummary."""
    outfile = Path(options.outfile)
    if options.syncnet_checkpoint_path:
        raise UserError("stream.py does not score the sync: inference.py --syncnet_checkpoint_path does, on a file")
    if options.short_video != "loop":
        raise UserError("a stream loops its face video: --short_video is for inference.py")
    check_output(outfile, "--outfile", options.inputs())
    check_writable(outfile.parent)
    settings = {} if silence_db is None else {"silence_db": silence_db}
    stream = LipSyncStream.from_options(options, realtime=realtime, delay=delay, **settings)
    pusher = _Pusher(stream, chunks, paced)
    metadata = None if options.unmarked else lip_sync_metadata(options.generator_weights(), "stream.py")
    credentials = ContentCredentials(options.c2pa_cert, options.c2pa_key) if options.c2pa_cert else None
    sign = credentials and (lambda path: credentials.sign(path, metadata))
    summary, started = StreamSummary(outfile), time.perf_counter()
    with VideoWriter(outfile, stream.fps, audio_rate=stream.sample_rate, crf=options.crf, preset=options.preset,
                     colour=stream.face.source.colour, metadata=metadata, sign=sign,
                     threads=encoder_threads(stream.generator.device)) as writer, \
            frame_bar("stream", None, options.progress) as bar:
        pusher.start()
        for frame in stream:
            writer.write(frame.image, audio=frame.audio)
            summary.frames += 1
            if frame.speaking:
                summary.speaking += 1
                summary.latencies.append(frame.latency)
            bar.update(1)
        pusher.join()
        if not pusher.pushed:  # nothing to write: the writer leaves no file
            raise UserError("no audio came on standard input" if options.audio == "" else
                            f"{options.audio} holds no audio samples")
    summary.seconds = time.perf_counter() - started
    return summary


class _Pusher(threading.Thread):
    """Pushes the chunks into the stream from a thread of its own, then closes the stream; a
    failure reading them is raised by join()."""

    def __init__(self, stream, chunks, paced):
        super().__init__(name="audio in", daemon=True)
        self.stream, self.chunks, self.paced, self.error, self.pushed = stream, chunks, paced, None, 0

    def run(self):
        pushed, started = 0.0, time.perf_counter()
        try:
            for rate, samples in self.chunks:
                if self.paced:  # as it is spoken: this chunk has been heard once its end is due
                    pushed += len(samples) / rate
                    time.sleep(max(0.0, started + pushed - time.perf_counter()))
                self.stream.push_audio(samples, rate)
                self.pushed += len(samples)
        except BaseException as error:  # noqa: BLE001 - raised by join(), in the caller's thread
            self.error = error
        finally:
            self.stream.close()

    def join(self, timeout=None):
        super().join(timeout)
        if self.error is not None:
            raise self.error if isinstance(self.error, UserError) else UserError(
                f"reading the audio failed: {self.error}") from self.error


def stdin_chunks(rate):
    """Raw PCM from standard input (s16le mono at ``rate``)."""
    return raw_chunks(sys.stdin.buffer, rate)
