"""Lip-sync as the speech arrives: audio chunks in, lip-synced frames out.

    from lipsync.stream import LipSyncStream
    stream = LipSyncStream(checkpoint_path, face, box=None, precision="auto", device="auto", realtime=False)
    stream.push_audio(samples, sample_rate)   # 1-D float32 in [-1, 1] or int16, any chunk size, any rate
    stream.flush()                            # the audio so far is complete: the frames it covers come out
    stream.clear()                            # interruption: pending audio dropped, idle from the next frame
    stream.close()                            # iteration ends once every frame is out
    for frame in stream: ...                  # StreamFrame: image, audio, pts, speaking

The audio between two flushes (an utterance) is cut into frames as inference cuts a file, so
pushing a speech file and flushing gives inference.py's frames. Output frame k shows the
face's frame k mod N (the face goes on looping through silences and interruptions): with
its mouth generated while speaking, untouched while idle (no audio, a mel window quieter
than ``silence_db``, or no face in the frame).

With ``realtime=False`` an utterance's frames are drawn in inference's batches (1, 2, 4, ...
frames, up to the batch size its frames allow), each as soon as the audio of its frames is
there: PyTorch's CPU kernels round differently for different batch sizes, and these are
what make the frames equal inference's, bit for bit (``wav2lip_batch_size`` bounds the wait).
With ``realtime=True`` frame k leaves at the wall time of the
first push + ``delay`` + k / fps, speaking when it was drawn in time and idle otherwise, so
the frame rate never drops (audio pushed too late for its frames' slots goes on from the
next frame to leave: a gap, nothing lost); ``delay`` defaults to the lookahead the mel window needs
(stream_audio.LOOKAHEAD_SECONDS, 212.5 ms) and MARGIN_SECONDS for the generator.
"""

import dataclasses
import threading
import time
from collections import deque

import numpy as np

from hparams import hparams
from lipsync.compose import face_crop, paste
from lipsync.marking import Label
from lipsync.options import Options
from lipsync.pipeline import batch_plan, generator_for
from lipsync.stream_audio import LOOKAHEAD_SECONDS, SILENCE_DB, AudioInput, Utterance, slot_samples
from lipsync.stream_face import StreamFace
from lipsync.stream_pacing import Pacing

MARGIN_SECONDS = 0.1  # realtime: the generator's time for a frame once its audio is in


@dataclasses.dataclass
class StreamFrame:
    image: np.ndarray  # H x W x 3 BGR uint8
    audio: np.ndarray  # float32 samples at LipSyncStream.sample_rate played with this frame
    pts: float  # seconds from the stream's first frame
    speaking: bool  # the mouth was generated from the audio
    index: int  # output frame number
    latency: float = None  # speaking frames: seconds from their mel window's audio being pushed to leaving
    _window_in_at: float = dataclasses.field(default=None, repr=False)


class LipSyncStream:
    """Lip-sync ``face`` (a video or an image) to audio pushed as it arrives; iterate for frames.

    ``options`` are inference's (lipsync.Options: pads, nosmooth, resize_factor, crop, rotate,
    face_cache, blend, wav2lip_batch_size, backend, label, ...); ``box`` is (top, bottom,
    left, right) as --box. The face is prepared when the stream opens."""

    sample_rate = hparams.sample_rate

    def __init__(self, checkpoint_path, face, box=None, precision="auto", device="auto", realtime=False,
                 silence_db=SILENCE_DB, delay=None, **options):
        unknown = sorted(set(options) - {field.name for field in dataclasses.fields(Options)})
        if unknown:
            raise TypeError(f"LipSyncStream got unexpected keyword argument(s) {', '.join(unknown)} (not inference's "
                            "settings: see lipsync.Options)")
        o = Options(str(checkpoint_path), str(face), "", box=tuple(box) if box else (-1, -1, -1, -1),
                    precision=precision, device=device, **options)
        self._open(o, realtime, silence_db, delay)

    @classmethod
    def from_options(cls, options, realtime=False, silence_db=SILENCE_DB, delay=None, generator=None, boxes=None):
        """A stream with inference's settings (lipsync.Options; its audio and outfile unused).
        ``generator`` and ``boxes`` (the face's, as StreamFace.boxes): those of an earlier
        stream with the same options, shared instead of loaded and found again."""
        stream = cls.__new__(cls)
        stream._open(options, realtime, silence_db, delay, generator, boxes)
        return stream

    def _open(self, o, realtime, silence_db, delay, generator=None, boxes=None):
        o.check_values()
        o.check_backend()
        self.options, self.realtime, self.silence_db = o, realtime, silence_db
        self.generator = generator or generator_for(o)
        self.face = StreamFace(o, self.generator.device, boxes)
        self.fps = self.face.fps
        width, height = self.face.source.frame_size  # inference's batches for frames of this size
        self._batch_frames = self.generator.batch_size if self.face.source.static else \
            batch_plan(width * height * 3, self.generator.batch_size)[0]
        self._batch, self._batch_size = [], 1  # the batch being filled (realtime=False), and its size
        self.delay = LOOKAHEAD_SECONDS + MARGIN_SECONDS if delay is None else float(delay)
        self._pacing = Pacing(self.fps, self.delay)
        self._label = Label(o.label, o.label_corner, o.label_size) if o.label is not None else None
        self._input, self._utterance, self._first, self._behind = AudioInput(), None, 0, False
        self._jobs, self._ready, self._audio_of = deque(), {}, {}  # frame jobs; drawn frames; audio by frame
        self._assigned = self._emitted = 0  # frames given audio; frames out
        self._epoch, self._closed, self._stopped, self._error = 0, False, False, None
        self._changed = threading.Condition()
        self._workers = threading.Thread(target=self._run_workers, name="lip-sync stream", daemon=True)
        self._workers.start()

    # -- audio in

    def push_audio(self, samples, sample_rate):
        with self._changed:  # push, flush, clear and close may come from different threads
            self._check_open()
            samples = self._input.take(samples, sample_rate)
            now = time.perf_counter()
            if self._pacing.started_at is None:  # the realtime clock starts
                self._pacing.start(now)
                self._changed.notify_all()
            if self._utterance is None:
                self._utterance = Utterance(self.fps)
                first = self._assigned
                if self.realtime:  # the frame whose slot is now: frames passed by are gone
                    first = max(first, self._pacing.current(now))
                self._first, self._behind = first, False
            self._queue(self._utterance.push(samples, now))

    def flush(self):
        with self._changed:
            self._check_open()
            self._end_utterance()

    def clear(self):
        with self._changed:
            self._epoch += 1  # frames being drawn are dropped when they come back
            self._jobs.clear()
            self._batch, self._batch_size = [], 1
            self._audio_of.clear()
            self._ready = {k: frame for k, frame in self._ready.items() if k < self._emitted}
            self._input.reset()
            self._utterance, self._assigned = None, self._emitted
            self._changed.notify_all()

    def close(self):
        with self._changed:
            if not self._closed:
                self._end_utterance()
                self._closed = True
                self._changed.notify_all()

    def stop(self):
        """End the stream now, whatever is pending: audio and frames dropped, the generator's
        threads gone, iteration over. A stream that is not read to its end needs this (or a
        ``with`` block), or its threads wait for a reader for good."""
        with self._changed:
            self._closed = self._stopped = True
            self._epoch += 1
            self._jobs.clear()
            self._ready.clear()
            self._audio_of.clear()
            self._assigned = self._emitted
            self._changed.notify_all()
        if threading.current_thread() is not self._workers:
            self._workers.join()
            self.face.close()

    def __enter__(self):
        return self

    def __exit__(self, *error):
        self.stop()

    def _check_open(self):
        if self._closed:
            raise ValueError("the stream is closed")

    def _end_utterance(self):
        if self._utterance is None:
            self._input.finish()
            return
        frames = self._utterance.push(self._input.finish()) + self._utterance.finish()
        self._queue(frames)
        if self._batch:
            self._jobs.append(self._batch)
        self._batch, self._batch_size, self._utterance = [], 1, None
        self._changed.notify_all()

    def _lag(self, k, frame):
        """Seconds by which frame k would leave later after its audio than the delay has it."""
        return self._pacing.due(k) - frame.window_in_at - (self.delay - LOOKAHEAD_SECONDS)

    def _queue(self, frames):
        for frame in frames:
            k = self._first + frame.index
            if self.realtime and k < self._emitted:  # its slot left before its audio came (a stall, lost
                # packets): it goes to the slot that gives it the delay again (a gap, no audio lost)
                late_to = max(self._emitted, self._pacing.current(frame.window_in_at - LOOKAHEAD_SECONDS))
                self._first, self._behind, k = self._first + late_to - k, True, late_to
            elif self._behind and self.silence_db is not None and frame.level_db < self.silence_db:
                # the audio that came with it queued behind it: caught up in the next pause (speech,
                # and audio pushed ahead of time when nothing stalled, is never cut)
                if self._lag(k, frame) > 1 / self.fps:
                    self._first -= 1  # a quiet frame left out
                    continue
                self._behind = False  # on time again
            self._audio_of[k] = frame.samples
            self._assigned = k + 1
            if self.realtime:  # the generator takes what is there
                self._jobs.append([(k, frame)])
                continue
            self._batch.append((k, frame))
            if len(self._batch) >= self._batch_size:  # inference's batches: 1, 2, 4, ... frames
                self._jobs.append(self._batch)
                self._batch, self._batch_size = [], min(2 * self._batch_size, self._batch_frames)
        if frames:
            self._changed.notify_all()

    # -- frames out

    def __iter__(self):
        return self

    def __next__(self):
        with self._changed:
            while True:
                if self._error is not None:
                    raise self._error
                k = self._emitted
                if self._closed and k >= self._assigned and (self.realtime or k not in self._ready):
                    raise StopIteration
                if self.realtime and self._pacing.started_at is not None:
                    left = self.due_at(k) - time.perf_counter()
                    if left <= 0:
                        return self._emit(k, self._ready.pop(k, None) or self._idle(k))
                    self._changed.wait(left)
                elif k in self._ready:
                    return self._emit(k, self._ready.pop(k))
                else:
                    self._changed.wait()

    def due_at(self, k):
        """Realtime: when frame k leaves (time.perf_counter()), once audio has been pushed."""
        return self._pacing.due(k)

    def _emit(self, k, frame):
        self._emitted = k + 1
        self._audio_of.pop(k, None)
        self.face.release(k)
        if frame.speaking:
            frame.latency = time.perf_counter() - frame._window_in_at
        self._changed.notify_all()
        return frame

    def _idle(self, k):
        """Frame k with the face's own mouth, and whatever audio it has."""
        samples = self._audio_of.get(k)
        if samples is None:
            samples = np.zeros(slot_samples(k, self.fps), np.float32)
        return self._drawn(k, samples)

    def _drawn(self, k, samples, face=None, window_in_at=None, picture=None):
        image = (self.face.frame(k) if picture is None else picture).copy()
        if face is not None:
            paste(image, self.face.box(k), face, self.options.blend)
        if self._label is not None:
            self._label.draw(image)
        return StreamFrame(image, samples, k / self.fps, face is not None, k, None, window_in_at)

    # -- the generator's threads

    def _run_workers(self):
        """The generator's workers: as inference runs them (two on a CPU, half the threads
        each), or in realtime one with every thread (each batch sooner, as many a second)."""
        with self.generator.workers(detecting=False, single=self.realtime) as (pool, count):
            for running in [pool.submit(self._work) for _ in range(count)]:
                running.result()

    def _work(self):
        try:
            while True:
                with self._changed:
                    while not self._has_work():
                        if self._stopped or (self._closed and not self._jobs):
                            return
                        self._changed.wait(0.05 if self.realtime else None)
                    epoch, batch = self._epoch, self._take_batch()
                started = time.perf_counter()
                frames = self._render(batch)
                with self._changed:
                    self._pacing.drawn(sum(frame.speaking for frame in frames), time.perf_counter() - started)
                    if epoch == self._epoch:  # not cleared or stopped meanwhile
                        self._ready.update((f.index, f) for f in frames if f.index >= self._emitted)
                    self._changed.notify_all()
        except BaseException as error:  # noqa: BLE001 - raised to whoever iterates
            with self._changed:
                self._error = error
                self._changed.notify_all()

    def _has_work(self):
        if not self._jobs or len(self._ready) >= 2 * self._batch_frames:  # frames in flight bounded as
            return False                                                  # inference bounds them
        if not self.realtime:
            return True
        now = time.perf_counter()
        while self._jobs and (self._jobs[0][0][0] < self._emitted  # its time has passed, or will before it is
                              or not self._pacing.drawable(self._jobs[0][0][0], now)):  # drawn: it leaves idle
            self._jobs.popleft()
        return bool(self._jobs) and self._pacing.soon(self._jobs[0][0][0], now)

    def _take_batch(self):
        if not self.realtime:
            return self._jobs.popleft()
        return self._pacing.batch(self._jobs, self._batch_frames, time.perf_counter())

    def _render(self, batch):
        pictures = {k: self.face.frame(k) for k, _ in batch}  # None: it left while it waited (realtime)
        batch = [(k, audio) for k, audio in batch if pictures[k] is not None]
        speaking = [(k, audio) for k, audio in batch if self._speaks(k, audio)]
        faces = {}
        if speaking:
            crops = np.stack([face_crop(pictures[k], self.face.box(k), self.generator.face_size) for k, _ in speaking])
            mels = np.stack([audio.mel for _, audio in speaking])
            faces = dict(zip((k for k, _ in speaking), self.generator.generate(crops, mels)))
        return [self._drawn(k, audio.samples, faces.get(k), audio.window_in_at, pictures[k]) for k, audio in batch]

    def _speaks(self, k, audio):
        loud = self.silence_db is None or audio.level_db >= self.silence_db
        return audio.mel is not None and loud and self.face.box(k) is not None
