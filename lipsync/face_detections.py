"""What every face-box source shares: the detector's faces in a block of frames, the box
planner with inference's settings, and what a source counted."""

import contextlib
import dataclasses

import cv2
import numpy as np

from face_detection.boxes import has_area, pad_and_clip, to_int_box
from lipsync.box_planning import BoxPlanner
from media.yuv import bgr_of

NO_PADS = (0, 0, 0, 0)


@dataclasses.dataclass(frozen=True)
class FaceCounts:
    """What a box source found in the frames it boxed."""

    detected: int = 0  # frames with a detected face
    filled: int = 0  # frames given a box from their neighbours
    passed_through: int = 0  # frames without a box
    cache: str = "off"  # the face cache: off, hit, or miss (saved)


def box_planner(options, frames, total=None, on_no_face=None):
    """A BoxPlanner with inference's settings for ``frames`` (a FrameSource)."""
    return BoxPlanner(frames.frame_size, options.pads, not options.nosmooth, on_no_face or options.on_no_face,
                      max_gap=int(options.max_gap * float(frames.fps)), limit=total, fps=float(frames.fps),
                      stride=options.det_stride, source=frames.described, single_frame=frames.static)


def detect_faces(detector, frames, options, frame_size, device, every_face=False):
    """For each of ``frames``, the face boxes [x1, y1, x2, y2] (whole pixels of the frame): the
    reference's best one (or none), or ``every_face`` S3FD keeps (the best first)."""
    from face_detection.detect import best_box, kept_boxes  # noqa: PLC0415 - torch only when detecting

    frames = [bgr_of(frame) for frame in frames]
    scale = 1.0
    if options.det_max_side and max(frame_size) > options.det_max_side:
        scale = options.det_max_side / max(frame_size)
        size = tuple(max(1, round(side * scale)) for side in frame_size)
        frames = [cv2.resize(frame, size, interpolation=cv2.INTER_AREA) for frame in frames]
    if options.backend == "torch":
        from lipsync.generator import autocast  # noqa: PLC0415

        context = autocast(device, options.precision)
    else:  # onnxruntime runs the exported fp32 network
        context = contextlib.nullcontext()
    with context:
        detections = detector.detect(np.stack(frames), select=kept_boxes if every_face else best_box) if frames else []
    found = []
    for detection in detections:
        rows = np.zeros((0, 5)) if detection is None else np.asarray(detection).reshape(-1, 5)
        boxes = [to_int_box(row[:4] / scale) for row in rows]
        # A box with nothing in the frame (outside it, or absurd) is no face; one that the
        # pads empty is the planner's to refuse.
        found.append([box for box in boxes if has_area(pad_and_clip([box], frame_size, NO_PADS)[0])])
    return found
