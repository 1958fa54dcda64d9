"""S3FD face detection, with the reference's ``face_detection.FaceAlignment`` entry point.

    detect     batch detection and the reference's post-processing (S3FDDetector)
    s3fd       the network
    boxes      box orders (x1y1x2y2, y1y2x1x2), padding, clipping
    loading    one detector per process; the weights' fingerprint
    api        FaceAlignment, as the reference's scripts call it
"""

from .api import FaceAlignment, LandmarksType, NetworkSize
from .detect import (
    DEFAULT_WEIGHTS,
    S3FDDetector,
    best_box,
    candidate_boxes,
    kept_boxes,
    nms,
)
from .s3fd import S3FD

__all__ = [
    "FaceAlignment", "LandmarksType", "NetworkSize", "S3FD", "S3FDDetector",
    "DEFAULT_WEIGHTS", "candidate_boxes", "nms", "best_box", "kept_boxes",
]
