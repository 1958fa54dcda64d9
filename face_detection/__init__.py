"""S3FD face detection, with the reference's ``face_detection.FaceAlignment`` entry point."""

from .api import FaceAlignment, LandmarksType, NetworkSize
from .detect import DEFAULT_WEIGHTS, S3FDDetector, best_box, candidate_boxes, kept_boxes, nms
from .s3fd import S3FD

__all__ = [
    "FaceAlignment", "LandmarksType", "NetworkSize", "S3FD", "S3FDDetector",
    "DEFAULT_WEIGHTS", "candidate_boxes", "nms", "best_box", "kept_boxes",
]
