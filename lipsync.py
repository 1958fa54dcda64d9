"""Lip-sync a face video (or a still image) to speech: the pipeline behind inference.py.

Three stages run at once, joined by small bounded queues, so memory does not grow with the
video's length:

    faces      decode -> S3FD -> boxes (gaps, pads, smoothing) -> 96x96 crops    (a thread)
    generate   Wav2Lip on batches of crops and mel chunks                      (the caller's thread)
    compose    decode again -> paste the generated faces -> encode             (a thread)

The compose stage decodes the video a second time instead of receiving the frames: a batch
of 128 full frames in flight between stages would cost gigabytes at 1080p, while decoding
costs a few milliseconds a frame. With faces found in every frame the frames written are the
reference's: output frame i shows input frame i mod N with mel chunk i, the video looping
when the audio is longer and cut when it is shorter.
"""

import contextlib
import ctypes
import ctypes.util
import dataclasses
import functools
import json
import queue
import threading
import time
from collections import deque
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

import audio
from atomic_write import atomic_output, check_writable
from checkpoint import load_weights
from cli import pick_device
from detection_cache import DetectionCache, file_digest
from errors import UserError
from face_boxes import FACE, NO_FACE, NOT_RUN, BoxPlanner, pad_and_clip
from face_detection import S3FDDetector
from face_detection.api import to_int_box
from face_detection.detect import DEFAULT_WEIGHTS
from media import VideoWriter, is_image, probe_video, read_frames, read_image
from models import Wav2Lip
from models.fusion import fuse_for_inference
from sync_similarity import SyncSimilarity

IMG_SIZE = 96
MEL_STEP = 16  # mel frames per chunk: 0.2 s
MEL_FPS = 80.0  # mel frames per second (16 kHz, hop 200)
CPU_GENERATOR_BATCH = 16


@dataclasses.dataclass
class Options:
    """What inference.py's flags set; the defaults are the reference's."""

    checkpoint_path: str
    face: str
    audio: str
    outfile: str = "results/result_voice.mp4"
    static: bool = False
    fps: float = 25.0  # of a still image
    pads: tuple = (0, 10, 0, 0)  # top, bottom, left, right
    face_det_batch_size: int = 16
    wav2lip_batch_size: int = 128
    resize_factor: int = 1
    crop: tuple = (0, -1, 0, -1)  # top, bottom, left, right; -1: to the edge
    box: tuple = (-1, -1, -1, -1)  # top, bottom, left, right: a fixed face box, no detection
    rotate: bool = False
    nosmooth: bool = False
    on_no_face: str = "interpolate"  # error | interpolate | skip
    max_gap: float = 0.5  # seconds: longest run of face-less frames that "interpolate" fills
    syncnet_checkpoint_path: str = None
    device: str = "auto"
    precision: str = "auto"  # auto (fp16 on CUDA, fp32 elsewhere) | fp32 | fp16 | bf16
    det_max_side: int = None
    det_stride: int = 1
    face_cache: str = None
    blend: str = "paste"  # paste | feather
    short_video: str = "loop"  # a video shorter than the audio: loop | stretch (repeat frames evenly) | error
    resize_to: tuple = ()  # (width, height) sizes each frame is resized to in turn, before resize_factor
    detector_path: str = None
    crf: int = 18
    preset: str = "veryfast"  # x264's: about 2.5x faster than "fast" at 720p, at a similar size for the same crf
    progress: bool = True


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


def lip_sync(options, sink=None):
    """Run inference as ``options`` say; returns a Summary.

    The video goes to ``options.outfile`` (a temporary file renamed at the end), or, when
    ``sink`` is given, each BGR frame goes to ``sink.write`` and nothing is written.
    """
    started = time.perf_counter()
    # A read-only or full folder: say so before decoding, not after the work.
    if sink is None:
        check_writable(Path(options.outfile).parent)
    if options.face_cache:
        check_writable(options.face_cache)
    job = _Job(options)
    if sink is not None:
        summary = job.run(sink)
    else:
        with VideoWriter(options.outfile, job.fps, audio_path=options.audio, crf=options.crf,
                         preset=options.preset) as writer:
            summary = job.run(writer)
    summary.seconds = time.perf_counter() - started
    if job.sync is not None:
        summary.sync = job.sync.finish()
        if sink is None:
            with atomic_output(sync_json_path(options.outfile)) as temporary:
                Path(temporary).write_text(json.dumps(summary.sync))
    return summary


def sync_json_path(outfile):
    return Path(outfile).with_suffix(".sync.json")


def mel_chunk_starts(mel_frames, fps):
    """Start column of each mel chunk, as the reference cuts them: one per output frame."""
    if mel_frames < MEL_STEP:
        raise UserError(f"the audio is too short: {mel_frames} mel frames, at least {MEL_STEP} (0.2 s) needed")
    multiplier, starts = MEL_FPS / fps, []
    while True:
        start = int(len(starts) * multiplier)
        if start + MEL_STEP > mel_frames:
            starts.append(mel_frames - MEL_STEP)
            return starts
        starts.append(start)


def transform_frame(frame, resize_factor=1, rotate=False, crop=(0, -1, 0, -1), resize_to=()):
    """The reference's per-frame preparation: resize by an integer factor, rotate 90 degrees clockwise, crop.

    ``resize_to`` sizes come first (the evaluation scripts scale frames to a face size this way).
    """
    for size in resize_to:
        frame = cv2.resize(frame, tuple(size))
    if resize_factor > 1:
        frame = cv2.resize(frame, (frame.shape[1] // resize_factor, frame.shape[0] // resize_factor))
    if rotate:
        frame = cv2.rotate(frame, cv2.ROTATE_90_CLOCKWISE)
    y1, y2, x1, x2 = crop
    y2 = frame.shape[0] if y2 == -1 else y2
    x2 = frame.shape[1] if x2 == -1 else x2
    return np.ascontiguousarray(frame[y1:y2, x1:x2])


def stretched_indices(count, length):
    """Input frame of each of ``length`` output frames when ``count`` frames are stretched by
    repeating frames evenly, for TTS audio longer than its video.

    The reference evaluation's increase_frames meant this, but its test for the next duplicate
    only ever fires at the first frame, freezing it; here the repeats are spread evenly.
    """
    return [k * count // length for k in range(length)]


def prepare_generator_input(faces, mels, device):
    """(k, 96, 96, 3) uint8 BGR faces and (k, 80, 16) mel chunks -> the generator's tensors on ``device``.

    As the reference: [face with rows 48..95 zeroed, face] on channels, scaled to [0, 1].
    """
    faces, mels = torch.from_numpy(faces), torch.from_numpy(mels)
    if device.type == "cuda":
        faces, mels = faces.pin_memory(), mels.pin_memory()
    faces = faces.to(device, non_blocking=True).permute(0, 3, 1, 2).float() / 255
    masked = faces.clone()
    masked[:, :, IMG_SIZE // 2:] = 0
    faces = torch.cat([masked, faces], dim=1).contiguous(memory_format=torch.channels_last)
    return mels.to(device, non_blocking=True).float().unsqueeze(1), faces


def paste(frame, box, face, blend="paste"):
    """Put a 96x96 generated face into ``frame`` (in place) over ``box`` = (y1, y2, x1, x2)."""
    y1, y2, x1, x2 = box
    face = cv2.resize(face, (x2 - x1, y2 - y1))
    if blend == "paste":
        frame[y1:y2, x1:x2] = face
        return
    alpha = cv2.resize(feather_mask(), (x2 - x1, y2 - y1))[..., None]
    region = frame[y1:y2, x1:x2].astype(np.float32)
    frame[y1:y2, x1:x2] = np.rint(region + alpha * (face.astype(np.float32) - region)).astype(np.uint8)


@functools.lru_cache(maxsize=1)
def feather_mask(size=IMG_SIZE):
    """Weights for ``--blend feather``: 1 over the mouth and jaw, falling smoothly to 0 at the
    box's sides and bottom and above the nose, so no seam shows where the box ends."""
    ramp = np.linspace(0, 1, size, dtype=np.float32)

    def smoothstep(x, lo, hi):
        t = np.clip((x - lo) / (hi - lo), 0, 1)
        return t * t * (3 - 2 * t)

    rows = smoothstep(ramp, 0.40, 0.58) * smoothstep(1 - ramp, 0.0, 0.12)
    cols = smoothstep(ramp, 0.0, 0.18) * smoothstep(1 - ramp, 0.0, 0.18)
    return np.outer(rows, cols).astype(np.float32)


class _Job:
    """Checked inputs, loaded models and the settings the stages share."""

    def __init__(self, options):
        self.options = o = options
        _check_options(o)
        for name, path in (("--face", o.face), ("--audio", o.audio)):
            if Path(path).exists() and Path(o.outfile).resolve() == Path(path).resolve():
                raise UserError(f"--outfile {o.outfile} is the {name} file: it would be overwritten; choose another name")

        self.image = None
        if is_image(o.face):
            image = read_image(o.face)
            height, width = _transformed_size(image.shape[1], image.shape[0], o)
            self.image = transform_frame(image, o.resize_factor, o.rotate, o.crop, o.resize_to)
            self.static, self.fps = True, Fraction(o.fps).limit_denominator(1001)
        else:
            info = probe_video(o.face)
            self.static, self.fps = o.static, info.fps
            height, width = _transformed_size(info.width, info.height, o)
        self.frame_size = (width, height)
        _check_box(o, width, height)

        self.mel = audio.melspectrogram(audio.load_wav(o.audio, 16000)).astype(np.float32)
        if np.isnan(self.mel).any():
            raise UserError("the audio's mel spectrogram contains NaN (a TTS voice?): add a little noise and retry")
        self.chunk_starts = mel_chunk_starts(self.mel.shape[1], float(self.fps))
        self.total = len(self.chunk_starts)
        self.repeats = None  # with --short_video stretch: how many output frames show each input frame
        if o.short_video == "stretch" and not self.static:
            count = sum(1 for _ in read_frames(o.face))
            if count < self.total:
                self.repeats = np.bincount(stretched_indices(count, self.total), minlength=count)

        self.device = pick_device(o.device)
        # On the CPU, batches of 16 run faster than 128 (they stay in cache), need about 1 GB less
        # memory and keep the stages evenly fed; the results do not depend on the batch.
        self.batch_size = o.wav2lip_batch_size if self.device.type == "cuda" else \
            min(o.wav2lip_batch_size, CPU_GENERATOR_BATCH)
        self.autocast = functools.partial(_autocast, self.device, o.precision)  # a fresh context per use
        self.autocast()  # checks the precision
        self.generator = _load_generator(o.checkpoint_path, _file_version(o.checkpoint_path), self.device)
        self.sync = SyncSimilarity(o.syncnet_checkpoint_path, self.mel, self.chunk_starts, self.device) \
            if o.syncnet_checkpoint_path else None

        self.fixed_box = tuple(o.box) if o.box[0] != -1 else None
        self.cache, self.cached, self.detector = None, None, None
        if self.fixed_box is None:
            if o.face_cache and not self.static:
                self.cache = DetectionCache(o.face_cache, o.face, self._detection_settings())
                self.cached = self.cache.load()
            if self.cached is None:
                self.detector = load_detector(self.device, o.detector_path, o.face_det_batch_size)

    def _detection_settings(self):
        o = self.options
        weights = Path(o.detector_path) if o.detector_path else DEFAULT_WEIGHTS
        return {"resize_factor": o.resize_factor, "rotate": o.rotate, "crop": list(o.crop),
                "det_max_side": o.det_max_side, "det_stride": o.det_stride, "batch": o.face_det_batch_size,
                "device": self.device.type, "precision": o.precision,
                "weights": file_digest(weights) if weights.is_file() else None}

    def frames(self):
        """One pass over the prepared input frames (just the first one when static)."""
        if self.image is not None:
            yield self.image.copy()
            return
        for frame in read_frames(self.options.face):
            yield transform_frame(frame, self.options.resize_factor, self.options.rotate, self.options.crop,
                                  self.options.resize_to)
            if self.static:
                return

    def looped_frames(self):
        """Input frame i mod N for output frames i = 0, 1, 2, ... (re-decoding for each loop),
        or each input frame as often as ``repeats`` says."""
        if self.repeats is not None:
            for frame, times in zip(self.frames(), self.repeats):
                for _ in range(times):
                    yield frame.copy()  # pasting changes the frame
            return
        if self.static:
            first = next(self.frames())
            while True:
                yield first.copy()  # pasting changes the frame
        while True:
            count = 0
            for count, frame in enumerate(self.frames(), 1):
                yield frame
            if count == 0:
                raise UserError(f"no frames could be read from {self.options.face}")

    def run(self, sink):
        pipeline = _Pipeline()
        to_generator, to_compose = pipeline.channel(4), pipeline.channel(4)
        summary = Summary(Path(self.options.outfile), self.total, 0.0)
        pipeline.start(self._faces_stage, to_generator, summary)
        pipeline.start(self._compose_stage, to_compose, sink)
        try:
            for batch in to_generator:
                generated = self._generate(batch)
                if self.sync is not None:
                    self.sync.add(batch.face_indices, batch.faces, generated)
                to_compose.put((batch.boxes, generated))
            to_compose.close()
        except _Stopped:
            pass
        except BaseException as error:  # noqa: BLE001 - re-raised by join, after the threads stop
            pipeline.fail(error)
        pipeline.join()
        return summary

    # --- faces: frames -> boxes -> generator batches -------------------------------------

    def _faces_stage(self, out, summary):
        batch = _BatchBuilder(self, out)
        boxes, written = [], 0
        for index, frame, box in self._boxed_frames(summary):
            boxes.append(box)
            for _ in range(1 if self.repeats is None else self.repeats[index]):
                batch.add(written, frame, box)
                written += 1
        count = len(boxes)
        if self.options.short_video == "error" and 0 < count < self.total:
            raise UserError(f"the video has {count} frames but the audio needs {self.total}: it is too short")
        # The audio is longer than the video: go on with input frame index mod count
        # (looped_frames raises first if the video gave no frames at all).
        with contextlib.closing(self.looped_frames()) as frames:
            for index, frame in zip(range(written, self.total), frames):
                batch.add(index, frame, boxes[index % count])
        batch.flush()
        out.close()

    def _boxed_frames(self, summary):
        """(index, frame, box or None) for the first pass over the video, at most ``total`` frames."""
        if self.fixed_box is not None:
            for index, frame in zip(range(self.total), self.frames()):
                yield index, frame, self.fixed_box
            return
        o = self.options
        planner = BoxPlanner(self.frame_size, o.pads, not o.nosmooth, o.on_no_face,
                             max_gap=int(o.max_gap * float(self.fps)), limit=self.total, fps=float(self.fps),
                             stride=o.det_stride)
        if self.cached is not None:
            summary.cache = "hit"
            planner.add(*self.cached)
            planner.finish()
            for index, frame in zip(range(planner.ready), self.frames()):
                yield index, frame, planner.box(index)
            summary.faces_detected, summary.faces_filled, summary.passed_through = planner.counts()
            return

        keep_detecting = self.cache is not None  # a cache entry covers the whole video
        block_size = o.face_det_batch_size  # frames waiting for their box: a block and the planner's lookahead
        all_boxes, all_status, pending, block = [], [], deque(), []

        def detect_block():
            found = self._detect(block)
            _trim_heap()
            all_boxes.extend(found[0])
            all_status.extend(found[1])
            if not planner.finished:
                planner.add(*found)
            pending.extend((index, frame) for index, frame in block if index < self.total)
            block.clear()

        for index, frame in enumerate(self.frames()):
            if index >= self.total and not keep_detecting:
                break
            block.append((index, frame))
            if len(block) == block_size:
                detect_block()
            while pending and pending[0][0] < planner.ready:
                index, frame = pending.popleft()
                yield index, frame, planner.box(index)
        if block:
            detect_block()
        planner.finish()
        while pending:
            index, frame = pending.popleft()
            yield index, frame, planner.box(index)
        if self.cache is not None:
            summary.cache = "miss (saved)"
            self.cache.save(all_boxes, all_status)
        summary.faces_detected, summary.faces_filled, summary.passed_through = planner.counts()

    def _detect(self, block):
        """Detector boxes [x1, y1, x2, y2] and FACE / NO_FACE / NOT_RUN for a block of (index, frame)."""
        o = self.options
        chosen = [k for k, (index, _) in enumerate(block) if index % o.det_stride == 0]
        frames = [block[k][1] for k in chosen]
        scale = 1.0
        if o.det_max_side and max(self.frame_size) > o.det_max_side:
            scale = o.det_max_side / max(self.frame_size)
            size = tuple(max(1, round(side * scale)) for side in self.frame_size)
            frames = [cv2.resize(frame, size, interpolation=cv2.INTER_AREA) for frame in frames]
        boxes, status = [(0, 0, 0, 0)] * len(block), [NOT_RUN] * len(block)
        with self.autocast():
            detections = self.detector.detect(np.stack(frames)) if frames else []
        for k, detection in zip(chosen, detections):
            box = None if detection is None else to_int_box(np.asarray(detection[:4]) / scale)
            # A box that pads and clips to nothing (e.g. outside the frame) is no face.
            if box is not None and _has_area(pad_and_clip([box], self.frame_size, o.pads)[0]):
                boxes[k], status[k] = box, FACE
            else:
                status[k] = NO_FACE
        return boxes, status

    # --- generate --------------------------------------------------------------------------

    @torch.no_grad()
    def _generate(self, batch):
        if not len(batch.faces):
            return batch.faces
        mels, faces = prepare_generator_input(batch.faces, batch.mels, self.device)
        with self.autocast():
            output = self.generator(mels, faces)
        # x 255 then truncated to uint8, as the reference does
        return (output.float() * 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()

    # --- compose: frames + generated faces -> video ----------------------------------------

    def _compose_stage(self, inbox, sink):
        with contextlib.closing(self.looped_frames()) as frames, \
                tqdm(total=self.total, unit="frame", desc="lip-sync", disable=not self.options.progress) as bar:
            for boxes, generated in inbox:
                faces = iter(generated)
                for box in boxes:
                    frame = next(frames)
                    if box is not None:
                        paste(frame, box, next(faces), self.options.blend)
                    sink.write(frame)
                bar.update(len(boxes))


class _BatchBuilder:
    """Collects output frames into generator batches: boxes, 96x96 face crops, mel chunks."""

    def __init__(self, job, out):
        self.job, self.out = job, out
        self._reset()

    def _reset(self):
        self.boxes, self.faces, self.mels, self.face_indices = [], [], [], []

    def add(self, index, frame, box):
        self.boxes.append(box)
        if box is not None:
            y1, y2, x1, x2 = box
            self.faces.append(cv2.resize(frame[y1:y2, x1:x2], (IMG_SIZE, IMG_SIZE)))
            start = self.job.chunk_starts[index]
            self.mels.append(self.job.mel[:, start:start + MEL_STEP])
            self.face_indices.append(index)
        if len(self.boxes) >= self.job.batch_size:
            self.flush()

    def flush(self):
        if self.boxes:
            faces = np.stack(self.faces) if self.faces else np.zeros((0, IMG_SIZE, IMG_SIZE, 3), np.uint8)
            mels = np.stack(self.mels) if self.mels else np.zeros((0, 80, MEL_STEP), np.float32)
            self.out.put(_Batch(self.boxes, faces, mels, self.face_indices))
            self._reset()


@dataclasses.dataclass
class _Batch:
    boxes: list  # per output frame: (y1, y2, x1, x2), or None to pass the frame through
    faces: np.ndarray  # (k, 96, 96, 3) uint8 BGR crops of the frames with a box
    mels: np.ndarray  # (k, 80, 16) float32
    face_indices: list  # output frame index of each crop


# --- threads ---------------------------------------------------------------------------------

class _Stopped(Exception):
    """Raised in a stage when another stage has failed."""


class _Pipeline:
    """Stage threads joined by channels; the first failure stops every stage and is re-raised by join()."""

    def __init__(self):
        self.stop, self.error, self.threads = threading.Event(), None, []

    def channel(self, size):
        return _Channel(size, self.stop)

    def start(self, stage, *args):
        thread = threading.Thread(target=self._guarded, args=(stage, *args), daemon=True)
        thread.start()
        self.threads.append(thread)

    def _guarded(self, stage, *args):
        try:
            stage(*args)
        except _Stopped:
            pass
        except BaseException as error:  # noqa: BLE001 - handed to the caller's thread
            self.fail(error)

    def fail(self, error):
        if self.error is None:
            self.error = error
        self.stop.set()

    def join(self):
        for thread in self.threads:
            thread.join()
        if self.error is not None:
            raise self.error


class _Channel:
    """A bounded queue whose put and get give up (raise _Stopped) once the pipeline stops."""

    _END = object()

    def __init__(self, size, stop):
        self._queue, self._stop = queue.Queue(size), stop

    def put(self, item):
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                pass
        raise _Stopped

    def close(self):
        self.put(self._END)

    def __iter__(self):
        while True:
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                if self._stop.is_set():
                    raise _Stopped from None
                continue
            if item is self._END:
                return
            yield item


# --- checks and settings ---------------------------------------------------------------------

# Test-set generation calls lip_sync once per video: keep the last networks loaded.
@functools.lru_cache(maxsize=1)
def _load_generator(path, version, device):
    generator = Wav2Lip()
    load_weights(generator, path, "cpu")
    return fuse_for_inference(generator).to(device)


def load_detector(device, weights_path=None, batch_size=None):
    """An S3FDDetector, reused while the device, weights file and batch size stay the same."""
    version = _file_version(weights_path or DEFAULT_WEIGHTS)
    if version is None:
        return S3FDDetector(device, weights_path, batch_size)  # says the weights are missing
    return _load_detector(torch.device(device), weights_path, version, batch_size)


@functools.lru_cache(maxsize=1)
def _load_detector(device, weights_path, version, batch_size):
    return S3FDDetector(device, weights_path, batch_size)


def _file_version(path):
    """Identifies a file's content for the caches: a rewritten file is loaded again."""
    try:
        stat = Path(path).stat()
    except OSError:
        return None  # the loader gives the error
    return stat.st_mtime_ns, stat.st_size


def _check_options(o):
    if len(o.pads) != 4 or len(o.crop) != 4 or len(o.box) != 4:
        raise UserError("--pads, --crop and --box take four numbers: top bottom left right")
    choices = {"on_no_face": ("error", "interpolate", "skip"), "blend": ("paste", "feather"),
               "short_video": ("loop", "stretch", "error"),
               "precision": ("auto", "fp32", "fp16", "bf16")}
    for name, allowed in choices.items():
        if getattr(o, name) not in allowed:
            raise UserError(f"--{name} must be one of {', '.join(allowed)}, not {getattr(o, name)!r}")
    for name in ("face_det_batch_size", "wav2lip_batch_size", "resize_factor", "det_stride"):
        if getattr(o, name) < 1:
            raise UserError(f"--{name} must be at least 1")
    if o.det_max_side is not None and o.det_max_side < 32:
        raise UserError("--det_max_side must be at least 32 pixels")
    if o.fps <= 0 or o.max_gap < 0:
        raise UserError("--fps must be positive and --max_gap not negative")


def _transformed_size(width, height, o):
    if o.resize_to:
        width, height = o.resize_to[-1]
    if o.resize_factor > 1:
        width, height = width // o.resize_factor, height // o.resize_factor
    if o.rotate:
        width, height = height, width
    y1, y2, x1, x2 = o.crop
    y2, x2 = height if y2 == -1 else y2, width if x2 == -1 else x2
    _check_region("--crop", o.crop, (y1, y2, x1, x2), width, height)
    return y2 - y1, x2 - x1


def _check_box(o, width, height):
    if o.box[0] != -1:  # the reference does not clip a fixed box
        _check_region("--box", o.box, o.box, width, height)


def _check_region(flag, given, region, width, height):
    y1, y2, x1, x2 = region
    if not (0 <= y1 < y2 <= height and 0 <= x1 < x2 <= width):
        raise UserError(f"{flag} {' '.join(map(str, given))} does not fit in the {width}x{height} frame "
                        "(top bottom left right, 0 <= top < bottom <= height, 0 <= left < right <= width)")


def _load_trim():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


_MALLOC_TRIM = _load_trim()


def _trim_heap():
    """Give freed heap memory back to the system (glibc).

    Detection frees hundreds of megabytes of activations of varying sizes per block, from
    several threads; glibc keeps such memory in its per-thread heaps, so without this the
    process grows by gigabytes over a long 1080p video although nothing is held.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _has_area(box):
    y1, y2, x1, x2 = box
    return y1 < y2 and x1 < x2


def _autocast(device, precision):
    """The autocast context for ``precision``: fp16 on CUDA by default, exact fp32 elsewhere."""
    if precision == "auto":
        precision = "fp16" if device.type == "cuda" else "fp32"
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "fp16" and device.type != "cuda":
        raise UserError("--precision fp16 needs a CUDA device; on the CPU use bf16")
    return torch.autocast(device.type, dtype=torch.float16 if precision == "fp16" else torch.bfloat16)
