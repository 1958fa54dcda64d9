"""Face-box conventions and the rules every box follows, in one place.

Two orders are in use:

    x1y1x2y2   left, top, right, bottom: what S3FD and FaceAlignment give
    y1y2x1x2   top, bottom, left, right: what crops and pastes index (``frame[y1:y2, x1:x2]``),
               and the order of the --pads, --box and --crop flags

Coordinates are pixels of the frame the detector saw; the far edges are exclusive.
"""

import numpy as np

PAD_LIMIT = 1 << 16  # the largest --pads, in pixels: more than any frame's side


def to_int_box(box):
    """x1y1x2y2 floats -> ints: negative coordinates clipped to 0 (the far edges are not),
    then truncated, as the reference does. A detector gone wrong cannot make this fail: NaN
    becomes 0 and infinity the largest float (then ``pad_and_clip`` clips them to the frame)."""
    x1, y1, x2, y2 = (int(v) for v in np.nan_to_num(np.clip(np.asarray(box[:4], np.float64), 0, None)))
    return x1, y1, x2, y2


def longer_side(box):
    """The longer side of an x1y1x2y2 box: the face's size."""
    x1, y1, x2, y2 = box[:4]
    return max(abs(y2 - y1), abs(x2 - x1))


def from_top_bottom_left_right(box):
    """A y1y2x1x2 box (as the flags give it) in the detector's x1y1x2y2 order."""
    top, bottom, left, right = box
    return left, top, right, bottom


def pad_and_clip(boxes, frame_size, pads):
    """(N, 4) x1y1x2y2 boxes -> (N, 4) y1y2x1x2, grown by ``pads`` (top, bottom, left, right)
    and clipped to the ``frame_size`` (width, height) frame.

    As the reference for every box that keeps an area; one without keeps none. The sums are
    made in floats and clipped before they become integers, so no box or pad can overflow.
    """
    width, height = frame_size
    top, bottom, left, right = pads
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    padded = boxes[:, [1, 3, 0, 2]] + np.array([-top, bottom, -left, right], np.float64)
    return np.clip(np.nan_to_num(padded), 0, [height, height, width, width]).astype(np.int64)


def has_area(box):
    """Whether a y1y2x1x2 box covers at least one pixel."""
    y1, y2, x1, x2 = box
    return y1 < y2 and x1 < x2


def clip_to_frame(boxes, width, height):
    """(k, 4) float x1y1x2y2 boxes clipped to the frame; those left without area (or not
    finite: garbage detections) are dropped."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    boxes = np.clip(boxes[np.isfinite(boxes).all(axis=1)], 0, [width, height, width, height])
    return boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]


def box_area(box):
    """Area of an x1y1x2y2 box (0 when it is empty)."""
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def iou(a, b):
    """Intersection over union of two x1y1x2y2 boxes."""
    inter = box_area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))
    union = box_area(a) + box_area(b) - inter
    return inter / union if union > 0 else 0.0
