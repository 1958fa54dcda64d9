"""S3FD face detection, with the reference's ``face_detection.FaceAlignment`` entry point.

    detect     batch detection and the reference's post-processing (S3FDDetector)
    s3fd       the network
    boxes      box orders (x1y1x2y2, y1y2x1x2), padding, clipping
    loading    one detector per process; the weights' fingerprint
    api        FaceAlignment, as the reference's scripts call it
"""

import importlib

_HOMES = {"FaceAlignment": "api", "LandmarksType": "api", "NetworkSize": "api", "S3FD": "s3fd",
          **dict.fromkeys(["S3FDDetector", "DEFAULT_WEIGHTS", "candidate_boxes", "nms", "best_box", "kept_boxes"],
                          "detect")}
__all__ = list(_HOMES)


_SUBMODULES = {"api", "boxes", "detect", "loading", "s3fd"}


def __getattr__(name):
    # Imported on first use, so that face_detection.boxes loads without torch.
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name not in _HOMES:
        raise AttributeError(f"module 'face_detection' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
