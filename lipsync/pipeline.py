"""Lip-sync a face video (or a still image) to speech: the wiring of the stages.

Three stages run at once, joined by small bounded queues, so memory does not grow with the
video's length:

    faces      decode -> face boxes (face_sources) -> face crops + mel chunks  (a thread)
    generate   Wav2Lip on batches of crops and mel chunks (generator)         (worker threads fed
                                                                              by the caller's)
    compose    paste the generated faces into the frames (compose) -> encode  (a thread)

The video is decoded once: each batch carries its frames from the faces stage to the
compose stage, and the batches and queues are sized so that at most about FRAME_BUFFER_BYTES
of frames are in flight (batch_plan), however big the frames; a still image is one frame
however often it is shown (the compose stage pastes into a copy of each frame). The speech's
mel spectrogram is computed a piece at a time as the frames reach it (audio_chunks.Speech).
The frames travel in their YUV planes (yuv.Picture) when the output is a video: only the
face box is converted to BGR, for the crop and again for the paste, so every other pixel is
written with the input's own numbers.

With faces found in every frame the frames written are the reference's: output frame i
shows input frame i mod N with mel chunk i, the video looping when the audio is longer and
cut when it is shorter. With several voices (one --audio per face) each frame carries a box
per voice, each face gets its own voice's mel chunk i, and the longest voice sets the length.
Where the time goes is kept by a StageClock (Summary.timings).
"""

import collections
import contextlib
import dataclasses
import functools
import gc
import json
import sys
import time
from pathlib import Path

import numpy as np

from hparams import hparams
from lipsync.audio_chunks import Speech
from lipsync.compose import face_crop, paste
from lipsync.face_sources import face_source
from lipsync.frames import FrameSource
from lipsync.heap import keep_freed_memory
from lipsync.marking import Label
from lipsync.options import sync_json_path
from lipsync.progress import frame_bar
from lipsync.stage_clock import StageClock
from lipsync.threads import Pipeline, Stopped
from lipsync.voices import mix_voices
from media.containers import VideoWriter
from media.provenance import ContentCredentials, lip_sync_metadata
from models.inputs import FACE_SIZES, MEL_STEP, WINDOW
from system.atomic_write import atomic_output, check_writable, reading, scratch_file
from system.errors import UserError
from system.processes import usable_cores
from system.progress import loading

# frames in flight between the stages, at most: 720p YUV frames are 1.4 MB each, 4K ones 12 MB
FRAME_BUFFER_BYTES = 384 << 20


@dataclasses.dataclass
class Summary:
    outfile: Path
    frames: int
    seconds: float
    faces_detected: int = 0
    faces_filled: int = 0
    passed_through: int = 0
    cache: str = "off"
    sync: dict = None
    timings: dict = None  # StageClock.figures(): seconds per stage, busy share per thread
    generator: str = ""  # where and how the generator ran: "cpu, fp32", "onnxruntime on cuda"

    def add_faces(self, counts):
        """A box source's FaceCounts, added to the run's."""
        self.faces_detected += counts.detected
        self.faces_filled += counts.filled
        self.passed_through += counts.passed_through
        self.cache = counts.cache


def lip_sync(options, sink=None, clock=None, on_frames=None):
    """Run inference as ``options`` say; returns a Summary.

    The video goes to ``options.outfile`` (a temporary file renamed at the end), or, when
    ``sink`` is given, each BGR frame goes to ``sink.write`` and nothing is written. ``clock``
    (a StageClock) may be started earlier, to count the imports in the start-up.
    ``on_frames(done, total)`` is called as frames are written (a server's progress).
    """
    with reading(options.inputs()):  # no output of the run may replace one of its inputs
        return _lip_sync(options, sink, clock, on_frames)


def _lip_sync(options, sink, clock, on_frames=None):
    clock = clock or StageClock()
    started = time.perf_counter()
    keep_freed_memory()  # each batch's activations reused, not faulted in again (process-wide)
    # A read-only or full folder: say so before decoding, not after the work.
    if sink is None:
        check_writable(Path(options.outfile).parent)
    if options.face_cache:
        check_writable(options.face_cache)
    job = _Job(options, clock)
    job.on_frames = on_frames
    if sink is not None:
        summary = job.run(sink)
    else:
        metadata = None if options.unmarked else \
            lip_sync_metadata(options.generator_weights(), options.tool, options.synthetic_speech)
        if metadata is not None and options.generation_record:  # test-set generation: what made the video
            metadata["generation"] = options.generation_record
        sign = job.credentials and (lambda path: job.credentials.sign(path, metadata))
        with _soundtrack(options) as soundtrack, \
                VideoWriter(options.outfile, job.frames.fps, audio_path=soundtrack, crf=options.crf,
                            preset=options.preset, colour=job.frames.colour, metadata=metadata, sign=sign,
                            subtitles=options.subtitles, threads=encoder_threads(job.generator.device)) as writer:
            summary = job.run(writer)
    summary.seconds = time.perf_counter() - started
    summary.timings = clock.figures()
    summary.generator = job.generator.described
    if job.sync is not None:
        if sink is None:
            with atomic_output(sync_json_path(options.outfile)) as temporary:
                Path(temporary).write_text(json.dumps(summary.sync))
    return summary


@contextlib.contextmanager
def _soundtrack(options):
    """The output's audio: --audio, the soundtrack given (dub.py's), or the voices mixed into a
    scratch file beside the output (removed at the end; a killed run's, by the next run)."""
    voices = [path for path, _ in options.voices]
    if options.soundtrack or len(voices) == 1:
        yield options.soundtrack or options.audio
        return
    with scratch_file(Path(options.outfile).with_suffix(".voices.wav")) as mixed:
        mix_voices(voices, mixed)
        yield mixed


def encoder_threads(generator_device):
    """x264's threads: as many as it likes (0) when the generator runs on a GPU; beside a
    generator on the CPU, one per four cores, since x264's frame threads cost 10-20 % more CPU
    for the same frames (measured at 720p, ultrafast and veryfast) and every core is the
    generator's too."""
    if getattr(generator_device, "type", generator_device) != "cpu":
        return 0
    return max(1, usable_cores() // 4)


class _Job:
    """One run: the inputs, the loaded networks and the three stages between them."""

    on_frames = None  # on_frames(done, total) as frames are written

    def __init__(self, options, clock):
        self.options = o = options
        self.clock = clock
        o.check()
        self.credentials = ContentCredentials(o.c2pa_cert, o.c2pa_key) if o.c2pa_cert else None
        self.frames = FrameSource(o)
        with clock.measure("mel"):  # NaN or infinite samples refused here, before any work
            self.speeches = [Speech(path) for path, _ in o.voices]
        longest = max(speech.samples for speech in self.speeches)
        for speech in self.speeches:  # a shorter voice goes on in silence: its face's mouth closes
            speech.pad_to(longest)
        self.chunk_starts = self.speeches[0].chunk_starts(float(self.frames.fps))
        self.total = len(self.chunk_starts)
        self.frames.stretch_to(self.total)
        self.generator = generator_for(o, clock)
        with clock.measure("load"):
            self.device, self.batch_size = self.generator.device, self.generator.batch_size
            self.sync = None
            if o.syncnet_checkpoint_path:
                from lipsync.sync_similarity import SyncSimilarity  # noqa: PLC0415 - torch, only when asked

                loading("the expert SyncNet", o.syncnet_checkpoint_path, o.progress)

                self.sync = SyncSimilarity(o.syncnet_checkpoint_path,
                                           "cpu" if o.backend == "onnxruntime" else self.device)
                self.voice_syncs = [self.sync] + [self.sync.another() for _ in self.speeches[1:]]
                if self.sync.face_size != self.generator.face_size:
                    print(f"note: the expert {o.syncnet_checkpoint_path} is for {self.sync.face_size}-pixel faces, the "
                          f"generator for {self.generator.face_size}: the sync scores see the faces resized to "
                          f"{self.sync.face_size}", file=sys.stderr)
            self.boxes = face_source(o, self.frames, self.total, self.device)

    def run(self, sink):
        self.pictures = isinstance(sink, VideoWriter) and self.frames.keeps_yuv
        self.batch_frames, depth = self._batch_plan()
        pipeline = Pipeline()
        to_generator, to_compose = pipeline.channel(depth), pipeline.channel(depth)
        summary = Summary(Path(self.options.outfile), self.total, 0.0)
        self.clock.pipeline_started()
        pipeline.start(self._faces_stage, to_generator, summary)
        pipeline.start(self._compose_stage, to_compose, sink)
        # the expert's scoring takes seconds on a CPU: its own bar, counting the windows of five
        # faces it scores (one per chunk that has them: at most the chunks less four)
        windows = max(0, self.total - WINDOW + 1) * len(self.speeches)
        self.sync_bar = frame_bar("sync score", windows, self.options.progress, "chunk") \
            if self.sync is not None else contextlib.nullcontext()
        try:
            with self.generator.workers(detecting=self.boxes.detects) as (pool, count):
                self.clock.set_workers("generator", count)
                generating = collections.deque()  # (batch, its future), in order
                for batch in to_generator:
                    generating.append((batch, pool.submit(self._generate, batch)))
                    if len(generating) >= count:
                        self._hand_on(*generating.popleft(), to_compose)
                while generating:
                    self._hand_on(*generating.popleft(), to_compose)
            to_compose.close()
        except Stopped:
            pass
        except BaseException as error:  # noqa: BLE001 - re-raised by join, after the threads stop
            pipeline.fail(error)
        with self.sync_bar:
            pipeline.join()
            self.clock.pipeline_ended()
            if self.sync is not None:  # the windows left over, before the writer closes
                summary.sync = self._sync_scores()
                self.sync_bar.total = self._scored()  # faceless frames leave windows out
                self.sync_bar.update(self._scored() - self.sync_bar.n)
        return summary

    def _sync_scores(self):
        """The expert's scores: {"chunks", "input", "result"}, or with several voices those of
        each under "voices", with its name (its --audio, or dub.py's speaker) and --pick_face."""
        scores = [sync.finish() for sync in self.voice_syncs]
        if len(scores) == 1:
            return scores[0]
        return {"voices": [{"voice": str(name), "pick_face": pick, **score}
                           for (name, pick), score in zip(self.options.named_voices, scores)]}

    def _scored(self):
        return sum(sync.scored for sync in self.voice_syncs)

    def _generate(self, batch):
        with self.clock.measure("generator"):
            return self.generator.generate(batch.faces, batch.mels)

    def _hand_on(self, batch, generating, to_compose):
        """A batch's generated faces, once ready, to the compose stage (batches go in order)."""
        generated = generating.result()
        if self.sync is not None:
            with self.clock.measure("generator"):
                for voice, sync in enumerate(self.voice_syncs):
                    mine = [k for k, of in enumerate(batch.voices) if of == voice]
                    sync.add([batch.face_indices[k] for k in mine], batch.faces[mine], generated[mine],
                             batch.mels[mine])
            self.sync_bar.update(self._scored() - self.sync_bar.n)
        to_compose.put((batch.frames, batch.boxes, generated))

    def _batch_plan(self):
        """(frames per batch, batches per queue): batch_plan's, but a still (or --static) is one
        frame in flight however many batches show it, so its batches need not shrink."""
        if self.frames.static:
            return self.batch_size, 4
        width, height = self.frames.frame_size
        return batch_plan(int(width * height * (1.5 if self.pictures else 3)), self.batch_size)

    def _faces_stage(self, out, summary):
        """Frames -> boxes -> generator batches (which carry the frames on), for every output frame."""
        with contextlib.ExitStack() as stack:
            mel_chunks = [stack.enter_context(contextlib.closing(speech.chunks(self.chunk_starts)))
                          for speech in self.speeches]
            self._build_batches(_BatchBuilder(mel_chunks, self.batch_frames, self.generator.face_size, out, self.clock), summary)
        out.close()

    def _build_batches(self, batch, summary):
        """The first pass's frames with their boxes, then (the audio being longer) the video looped."""
        clock, boxes, written = self.clock, [], 0
        frames = clock.timed(self.frames.frames(self.pictures), "decode")
        boxed = self.boxes.boxed_frames(frames, self.total)
        if len(self.speeches) == 1:  # a box source of one face gives a box (or None), not one per voice
            boxed = ((index, frame, (box,)) for index, frame, box in boxed)
        for index, frame, box in clock.timed(boxed, "boxes"):
            boxes.append(box)
            for _ in range(self.frames.times_shown(index)):
                batch.add(written, frame, box)  # the same frame when shown again: compose pastes into copies
                written += 1
        clock.add("detection", clock.seconds.pop("boxes", 0.0) - clock.seconds.get("decode", 0.0))
        summary.add_faces(self.boxes.counts())
        count = len(boxes)
        if self.options.short_video == "error" and 0 < count < self.total:
            raise UserError(f"the video has {count} frames but the audio needs {self.total}: it is too short")
        # The audio is longer than the video: go on with input frame index mod count
        # (looped() raises first if the video gave no frames at all).
        with contextlib.closing(self.frames.looped(self.pictures)) as looped:
            for index, frame in zip(range(written, self.total), clock.timed(looped, "decode")):
                batch.add(index, frame, boxes[index % count])
        batch.flush()

    def _compose_stage(self, inbox, sink):
        """Frames + generated faces -> the sink (the video writer)."""
        o, clock = self.options, self.clock
        label = Label(o.label, o.label_corner, o.label_size) if o.label is not None else None
        written = 0
        with frame_bar("lip-sync", self.total, o.progress) as bar:  # a bar turned off counts nothing
            for frames, boxes, generated in inbox:
                faces = iter(generated)
                for frame, voice_boxes in zip(frames, boxes):
                    with clock.measure("paste"):
                        if voice_boxes != (None,) * len(voice_boxes) or label is not None:
                            frame = frame.copy()  # batches share a frame shown again (a still)
                        for box in voice_boxes:  # in voice order: where boxes overlap, the later face is on top
                            if box is not None:
                                paste(frame, box, next(faces), o.blend)
                        if label is not None:
                            label.draw(frame)
                    with clock.measure("encode"):
                        sink.write(frame)
                    clock.frame_written()
                bar.update(len(boxes))
                written += len(boxes)
                if self.on_frames is not None:
                    self.on_frames(written, self.total)


def generator_for(options, clock=None):
    """The generator on the backend ``options`` name; PyTorch is imported only for its own."""
    o, clock = options, clock or StageClock()
    loading("the Wav2Lip generator", o.generator_weights(), o.progress)  # before PyTorch's import: 1.5 s
    with _collector_paused():
        with clock.measure("imports"):
            if o.backend == "onnxruntime":
                from lipsync.onnx_generator import OnnxGenerator  # noqa: PLC0415

                load = functools.partial(OnnxGenerator, o.generator_weights(), o.device, o.wav2lip_batch_size,
                                         o.checkpoint_path)
            else:
                from lipsync.generator import TorchGenerator  # noqa: PLC0415

                load = functools.partial(TorchGenerator, o.checkpoint_path, o.device, o.precision,
                                         o.wav2lip_batch_size, o.verbose)
        with clock.measure("load"):
            return load()


@contextlib.contextmanager
def _collector_paused():
    """Python's cyclic garbage collector off while PyTorch and the weights load: their hundreds
    of thousands of new objects set off collections that free nothing and cost 0.2-0.3 s. The
    first time in a process they are then frozen (gc.freeze), or the next collections would
    each scan them again (0.1 s a scan). Only the first time: freezing keeps any garbage alive
    at that moment, which must not build up where lip_sync runs once per video."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if not gc.get_freeze_count():
                gc.freeze()
            gc.enable()


def batches_in_flight(depth):
    """Batches holding frames at once with ``depth`` batches per queue: both queues full, one
    being built, up to two being generated side by side, one being composed."""
    return 2 * depth + 4


def batch_plan(frame_bytes, generator_batch):
    """(frames per batch, batches per queue) keeping the frames in flight within
    FRAME_BUFFER_BYTES: 4 batches of the generator's size per queue where they fit, else fewer
    batches, then smaller ones (4K frames on a GPU: 128 -> 5 frames); a frame too big for six
    in the budget goes one per batch."""
    fitting = FRAME_BUFFER_BYTES // max(1, frame_bytes)
    for depth in (4, 3, 2, 1):
        if batches_in_flight(depth) * generator_batch <= fitting:
            return generator_batch, depth
    return max(1, fitting // batches_in_flight(1)), 1


class _BatchBuilder:
    """Collects output frames into generator batches: frames, boxes, face crops (of the
    generator's size), mel chunks.

    The first batches are small (1, 2, 4, ...) so that the first frames come out at once."""

    def __init__(self, mel_chunks, batch_size, face_size, out, clock):
        self.mel_chunks, self.batch_size, self.face_size, self.out, self.clock = mel_chunks, batch_size, face_size, out, clock
        self.size = 1
        self.small_note_due = face_size > min(FACE_SIZES)  # a face under 96 is the reference's case: no note
        self._reset()

    def _reset(self):
        self.frames, self.boxes, self.faces, self.mels, self.face_indices, self.voices = [], [], [], [], [], []

    def add(self, index, frame, boxes):
        """Output frame ``index`` with a box (or None) per voice (they come in order: each takes
        the next mel chunk of every voice). A batch holds at most its size in faces, or one frame's."""
        mels = [next(chunks) for chunks in self.mel_chunks]
        if self.faces and len(self.faces) + sum(box is not None for box in boxes) > self.size:
            self.flush()  # several voices: this frame's faces would overfill the batch
        self.frames.append(frame)
        self.boxes.append(boxes)
        for voice, (box, mel) in enumerate(zip(boxes, mels, strict=True)):
            if box is not None:
                self._note_small(index, box)
                with self.clock.measure("crops"):
                    self.faces.append(face_crop(frame, box, self.face_size))
                self.mels.append(mel)
                self.face_indices.append(index)
                self.voices.append(voice)
        if max(len(self.boxes), len(self.faces)) >= self.size:
            self.flush()
            self.size = min(2 * self.size, self.batch_size)

    def _note_small(self, index, box):
        """One note, at the first face smaller than a larger generator's size: it is upscaled, so
        the generator sees no more detail than the video holds, at that network's cost."""
        height, width = box[1] - box[0], box[3] - box[2]
        if self.small_note_due and min(height, width) < self.face_size:
            self.small_note_due = False
            print(f"note: the face in frame {index} is {width}x{height} pixels, smaller than the generator's "
                  f"{self.face_size}: it is upscaled to {self.face_size} and the mouth can hold no more detail than "
                  "the video has (a 96-pixel generator costs less)", file=sys.stderr)

    def flush(self):
        if self.boxes:
            faces = np.stack(self.faces) if self.faces else np.zeros((0, self.face_size, self.face_size, 3), np.uint8)
            mels = np.stack(self.mels) if self.mels else np.zeros((0, hparams.num_mels, MEL_STEP), np.float32)
            self.out.put(_Batch(self.frames, self.boxes, faces, mels, self.face_indices, self.voices))
            self._reset()


@dataclasses.dataclass
class _Batch:
    frames: list  # the output frames (BGR arrays or yuv.Pictures), pasted into by the compose stage
    boxes: list  # per output frame, per voice: (y1, y2, x1, x2), or None (all None: pass the frame through)
    faces: np.ndarray  # (k, S, S, 3) uint8 BGR crops of the boxes, S the generator's face size
    mels: np.ndarray  # (k, num_mels, MEL_STEP) float32
    face_indices: list  # output frame index of each crop
    voices: list  # the voice of each crop
