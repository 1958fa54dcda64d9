"""From per-frame face detections to the boxes inference crops: gaps, pads and smoothing.

The reference pads each detection, clips it to the frame and replaces box i by the mean of
boxes i..i+4 (truncated to integers, in place, so the last windows already hold smoothed
boxes). That is reproduced exactly when every frame has a face. Beyond the reference, frames
may lack a detection: either the detector found no face there, or it was not run there
(``--det_stride``). Runs of such frames are filled from the neighbouring detections or passed
through untouched, and smoothing runs over each stretch of boxed frames on its own.

``BoxPlanner`` does this while the video streams: a frame's box is final once the detections
of a bounded number of later frames are known, so only that many frames wait in memory.
"""

import numpy as np

from face_detection.boxes import has_area, pad_and_clip
from hparams import hparams
from system.errors import UserError

FACE, NO_FACE, NOT_RUN = 1, 0, -1  # what the detector said about a frame
SMOOTHING_WINDOW = 5


class NoFaceError(UserError):
    pass


def smooth_boxes(boxes, window=SMOOTHING_WINDOW):
    """The reference's smoothing, exactly: in place for i = 0, 1, ..., box i = mean(boxes[i:i+window]),
    or of ``boxes[len - window:]`` near the end (Python slicing, so a short list takes its tail)."""
    boxes = np.array(boxes, np.int64)
    for i in range(len(boxes)):
        rows = boxes[len(boxes) - window:] if i + window > len(boxes) else boxes[i:i + window]
        boxes[i] = np.mean(rows, axis=0)  # assigning to the int array truncates
    return boxes


def fill_gaps(boxes, status, max_gap, on_no_face, at_start=True, at_end=True):
    """Boxes for frames without a detection; returns (boxes (N, 4) float, has_box (N,) bool).

    A run of frames between detections is filled by linear interpolation between its two
    neighbours (or a copy of its one neighbour at the start or end of the video) when it is
    only frames the detector skipped, or, with ``on_no_face="interpolate"``, when it is at most
    ``max_gap`` frames long. Other runs (``skip``, or longer gaps such as cut-aways) get no
    box. ``at_start``/``at_end`` say whether the arrays begin/end with the video; a run that
    touches an open end is left boxless when it is not already too long.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    status = np.asarray(status)
    filled, has_box = boxes.copy(), status == FACE
    n = len(status)
    start = 0
    while start < n:
        if status[start] == FACE:
            start += 1
            continue
        stop = start
        while stop < n and status[stop] != FACE:
            stop += 1
        has_left, has_right = start > 0, stop < n
        open_run = (start == 0 and not at_start) or (stop == n and not at_end)
        undetected_only = not np.any(status[start:stop] == NO_FACE)
        fill = (has_left or has_right) and not open_run and (
            undetected_only or (on_no_face == "interpolate" and stop - start <= max_gap))
        if fill:
            if has_left and has_right:
                weights = (np.arange(start, stop) - (start - 1)) / (stop - start + 1)
                filled[start:stop] = (1 - weights)[:, None] * boxes[start - 1] + weights[:, None] * boxes[stop]
            else:
                filled[start:stop] = boxes[start - 1] if has_left else boxes[stop]
            has_box[start:stop] = True
        start = stop
    return np.rint(filled), has_box


def plan_boxes(boxes, status, frame_size, pads, smooth=True, on_no_face="interpolate", max_gap=0,
               at_start=True, at_end=True):
    """Final crop boxes [y1, y2, x1, x2] (N, 4) int and has_box (N,) bool for a run of frames.

    ``boxes`` are detector boxes [x1, y1, x2, y2] (any values where status is not FACE).
    """
    filled, has_box = fill_gaps(boxes, status, max_gap, on_no_face, at_start, at_end)
    planned = np.zeros((len(filled), 4), np.int64)
    planned[has_box] = pad_and_clip(filled[has_box], frame_size, pads)
    if smooth:
        for start, stop in _true_runs(has_box):
            planned[start:stop] = smooth_boxes(planned[start:stop])
    return planned, has_box


def _true_runs(mask):
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return zip(edges[::2], edges[1::2])


class BoxPlanner:
    """``plan_boxes`` over a video whose detections arrive a batch at a time.

        planner.add(boxes, status)     # as detections come
        planner.finish()               # the video (or the part used) has ended
        planner.ready                  # frames [0, ready) have their final box
        planner.box(i)                 # (y1, y2, x1, x2), or None: pass frame i through

    Each frame's box equals what ``plan_boxes`` gives on the whole video: it is computed once
    the detections of ``lookahead`` later frames are known, over a window reaching as far back.
    ``limit`` frames at most are planned (the reference detects only the frames it outputs);
    ``stride`` is the spacing of detections when the detector skips frames; ``fps`` (by default
    hparams.fps) only times the frames that messages name; ``source`` names the frames in them:
    "the video PATH", or for a single frame "the image PATH".
    """

    def __init__(self, frame_size, pads, smooth=True, on_no_face="interpolate", max_gap=0, limit=None, fps=None,
                 stride=1, source="the video", single_frame=False):
        self.source, self.single_frame = source, single_frame
        self.frame_size, self.pads, self.smooth = frame_size, pads, smooth
        self.on_no_face, self.max_gap, self.limit = on_no_face, max_gap, limit
        self.fps = hparams.fps if fps is None else fps
        # How far a detection can change earlier boxes: across a gap it may fill, then smoothing.
        self.lookahead = max(max_gap, stride) + 2 * SMOOTHING_WINDOW
        self._raw, self._status = [], []
        self._planned = np.zeros((0, 4), np.int64)
        self._has_box = np.zeros(0, bool)
        self.finished = False

    @property
    def ready(self):
        return len(self._has_box)

    @property
    def detected(self):
        return len(self._status)

    def add(self, boxes, status):
        room = len(status) if self.limit is None else max(0, self.limit - len(self._status))
        for box, found in zip(list(boxes)[:room], list(status)[:room]):
            index = len(self._status)
            if found == NO_FACE and self.single_frame:
                raise self._no_face()
            if found == NO_FACE and self.on_no_face == "error":
                raise NoFaceError(f"face not detected in frame {index} (at {index / self.fps:.2f} s); "
                                  "use --on_no_face interpolate or skip to carry on without it")
            if found == FACE:
                self._check_pads(box, index)
            self._raw.append(np.zeros(4) if box is None else np.asarray(box[:4], np.float64))
            self._status.append(found)
        if self.limit is not None and len(self._status) >= self.limit:
            self.finish()
        else:
            self._plan(final=False)

    def _check_pads(self, box, index):
        """Refuse --pads that leave nothing of a face the detector found (not "no face": it was found)."""
        found = pad_and_clip([box[:4]], self.frame_size, (0, 0, 0, 0))[0]
        padded = pad_and_clip([box[:4]], self.frame_size, self.pads)[0]
        if has_area(found) and not has_area(padded):
            raise UserError(f"--pads {' '.join(map(str, self.pads))} leave an empty box for the face found in frame "
                            f"{index} (at {index / self.fps:.2f} s): its box {' '.join(map(str, found))} (top bottom "
                            f"left right) becomes {' '.join(map(str, padded))}; give pads that keep some of it")

    def finish(self):
        if not self.finished:
            self.finished = True
            if self._status and not any(found == FACE for found in self._status):
                raise self._no_face()
            self._plan(final=True)

    def _no_face(self):
        if self.single_frame:
            return NoFaceError(f"no face detected in {self.source}")
        return NoFaceError(f"no face detected in any frame of {self.source}")

    def counts(self):
        """(frames with a detected face, frames given a box from their neighbours, frames passed through)."""
        detected = np.array(self._status[:self.ready]) == FACE
        return int(detected.sum()), int((self._has_box & ~detected).sum()), int((~self._has_box).sum())

    def box(self, index):
        return tuple(int(v) for v in self._planned[index]) if self._has_box[index] else None

    def _plan(self, final):
        known, done = len(self._status), self.ready
        stop = known if final else known - self.lookahead
        if stop <= done:
            return
        lo = max(0, done - self.lookahead)
        planned, has_box = plan_boxes(
            np.array(self._raw[lo:known]), np.array(self._status[lo:known]), self.frame_size, self.pads,
            self.smooth, self.on_no_face, self.max_gap, at_start=lo == 0, at_end=final)
        self._planned = np.concatenate([self._planned, planned[done - lo:stop - lo]])
        self._has_box = np.concatenate([self._has_box, has_box[done - lo:stop - lo]])
