"""Putting generated faces back into the frames."""

import functools

import cv2
import numpy as np

from media.yuv import Picture, bgr_of
from models.inputs import FACE_SIZE


def face_crop(frame, box, size=FACE_SIZE):
    """The size x size BGR face a network takes from ``frame`` (BGR or a Picture) at ``box`` =
    (y1, y2, x1, x2): the inverse of paste, for the file pipeline and the stream alike."""
    return cv2.resize(bgr_of(frame, box), (size, size))


def paste(frame, box, face, blend="paste"):
    """Put a generated face (square, of the generator's size) into ``frame`` (BGR or a Picture,
    in place) over ``box`` = (y1, y2, x1, x2)."""
    if isinstance(frame, Picture):  # only the box's chroma blocks leave YUV
        with frame.editing(box) as (region, inner):
            paste(region, inner, face, blend)
        return
    y1, y2, x1, x2 = box
    size = len(face)  # the generator's face size: the feather is drawn at it
    face = cv2.resize(face, (x2 - x1, y2 - y1))
    if blend == "paste":
        frame[y1:y2, x1:x2] = face
        return
    alpha = cv2.resize(feather_mask(size), (x2 - x1, y2 - y1))[..., None]
    region = frame[y1:y2, x1:x2].astype(np.float32)
    frame[y1:y2, x1:x2] = np.rint(region + alpha * (face.astype(np.float32) - region)).astype(np.uint8)


@functools.lru_cache(maxsize=4)
def feather_mask(size=FACE_SIZE):
    """Weights for ``--blend feather``: 1 over the mouth and jaw, falling smoothly to 0 at the
    box's sides and bottom and above the nose, so no seam shows where the box ends."""
    ramp = np.linspace(0, 1, size, dtype=np.float32)

    def smoothstep(x, lo, hi):
        t = np.clip((x - lo) / (hi - lo), 0, 1)
        return t * t * (3 - 2 * t)

    rows = smoothstep(ramp, 0.40, 0.58) * smoothstep(1 - ramp, 0.0, 0.12)
    cols = smoothstep(ramp, 0.0, 0.18) * smoothstep(1 - ramp, 0.0, 0.18)
    return np.outer(rows, cols).astype(np.float32)
