"""Where each frame's face box comes from: a fixed --box, the face cache, or S3FD.

Each source turns the first pass over the frames into (index, frame, box) for the first
``total`` output frames, box = (y1, y2, x1, x2) or None (pass the frame through); once they
are all out, its ``counts()`` say what it found (FaceCounts), for the caller to report.
"""

from collections import deque

from lipsync.box_planning import FACE, NO_FACE, NOT_RUN
from lipsync.face_detections import FaceCounts, box_planner, detect_faces
from lipsync.heap import trim_heap
from lipsync.progress import frame_bar
from lipsync.tracked_boxes import TrackedBoxes
from system.progress import loading


def face_source(options, frames, total, device):
    """The box source ``options`` ask for, for ``frames`` (a FrameSource) and ``total`` output frames."""
    if options.fixed_box is not None:
        return GivenBox(options.fixed_box)
    if options.given_boxes:  # --pick_face auto among them
        return TrackedBoxes(None, options, frames, device, total)
    from lipsync.detection_cache import DetectionCache  # noqa: PLC0415 - torch only when detecting

    if options.pick != "best":
        return TrackedBoxes(_detector(options, device), options, frames, device, total)
    planner = box_planner(options, frames, total)
    cache = None
    if options.face_cache and not frames.static:
        cache = DetectionCache(options.face_cache, options.face, options.detection_settings(device))
        cached = cache.load()
        if cached is not None:
            return CachedBoxes(planner, cached)
    detector = _detector(options, device)
    # The frames S3FD runs on: the output's (or with a cache every frame of the video, by a
    # probe's estimate), every --det_stride'th of them.
    count = frames.frame_count if cache is not None else min(total, frames.frame_count)
    return DetectedBoxes(detector, planner, options, frames.frame_size, device, cache,
                         -(-count // options.det_stride))


def _detector(options, device):
    # Detection needs PyTorch (S3FD's post-processing, and the network unless it runs in onnxruntime).
    from face_detection.loading import load_detector  # noqa: PLC0415

    loading("S3FD", options.detector_weights(), options.progress)
    return load_detector(device, options.detector_weights(), options.face_det_batch_size)


class GivenBox:
    """--box: the box given, the same in every frame; no detection, no pads, no smoothing."""

    detects = False  # runs S3FD beside the generator

    def __init__(self, box):
        self.box = box

    def boxed_frames(self, frames, total):
        for index, frame in zip(range(total), frames):
            yield index, frame, self.box

    def counts(self):
        return FaceCounts()


class CachedBoxes:
    """Detections of an earlier run, read from the face cache."""

    detects = False  # runs S3FD beside the generator

    def __init__(self, planner, detections):
        self.planner, self.detections = planner, detections

    def boxed_frames(self, frames, total):
        self.planner.add(*self.detections)
        self.planner.finish()
        for index, frame in zip(range(self.planner.ready), frames):
            yield index, frame, self.planner.box(index)

    def counts(self):
        return FaceCounts(*self.planner.counts(), cache="hit")


class DetectedBoxes:
    """S3FD on blocks of frames as they stream by; a frame is handed on once its box is final,
    so only a block and the planner's lookahead wait in memory. With a face cache the whole
    video is detected and saved. A bar counts the frames S3FD has run on against ``count``."""

    detects = True  # runs S3FD beside the generator

    def __init__(self, detector, planner, options, frame_size, device, cache=None, count=None):
        self.detector, self.planner, self.options = detector, planner, options
        self.frame_size, self.device, self.cache, self.count = frame_size, device, cache, count

    def boxed_frames(self, frames, total):
        with frame_bar("face detection", self.count, self.options.progress) as bar:
            self.detector.on_frames_done = bar.update  # the detector is shared by the runs of a process
            try:
                yield from self._boxed_frames(frames, total)
            finally:
                self.detector.on_frames_done = None

    def _boxed_frames(self, frames, total):
        planner, keep_detecting = self.planner, self.cache is not None  # a cache entry covers the whole video
        all_boxes, all_status, pending, block = [], [], deque(), []

        def detect_block():
            found = self.detect(block)
            trim_heap()
            all_boxes.extend(found[0])
            all_status.extend(found[1])
            if not planner.finished:
                planner.add(*found)
            pending.extend((index, frame) for index, frame in block if index < total)
            block.clear()

        for index, frame in enumerate(frames):
            if index >= total and not keep_detecting:
                break
            block.append((index, frame))
            if len(block) == self.options.face_det_batch_size:
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
            self.cache.save(all_boxes, all_status)

    def counts(self):
        return FaceCounts(*self.planner.counts(), cache="off" if self.cache is None else "miss (saved)")

    def detect(self, block):
        """Detector boxes [x1, y1, x2, y2] and FACE / NO_FACE / NOT_RUN for a block of (index, frame)."""
        chosen = [k for k, (index, _) in enumerate(block) if index % self.options.det_stride == 0]
        found = detect_faces(self.detector, [block[k][1] for k in chosen], self.options, self.frame_size, self.device)
        boxes, status = [(0, 0, 0, 0)] * len(block), [NOT_RUN] * len(block)
        for k, faces in zip(chosen, found):
            if faces:
                boxes[k], status[k] = faces[0], FACE
            else:
                status[k] = NO_FACE
        return boxes, status
