"""A stand-in for S3FD on the synthetic faces of media.synthetic: the face is the bright box."""

import cv2
import numpy as np

from face_detection.detect import best_box, kept_boxes


def bright_box(frame, threshold=200):
    """The bounding box [x1, y1, x2, y2] of the pixels brighter than ``threshold`` in every channel."""
    ys, xs = np.nonzero(frame.min(axis=2) > threshold)
    if len(xs) < 50:
        return None
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


class BrightBoxDetector:
    """Stands in for S3FD on synthetic frames: the face is the bright box."""

    calls = []

    def __init__(self, device="cpu", weights_path=None, batch_size=None):
        self.batch_size = batch_size

    def detect(self, frames, select=None):
        """Like S3FDDetector.detect: one box or None per frame, or with ``select``, (k, 5) arrays;
        with kept_boxes (every face) one box per bright region, the largest first."""
        BrightBoxDetector.calls.append(frames.shape)
        if select is kept_boxes:
            return [bright_regions(frame) for frame in frames]
        found = [None if (box := bright_box(f)) is None else np.array([*box, 0.99], np.float32) for f in frames]
        if select is None or select is best_box:  # as S3FD's: a row or None
            return found
        return [np.zeros((0, 5), np.float32) if box is None else box[None] for box in found]


def bright_regions(frame, threshold=200):
    """(k, 5) boxes [x1, y1, x2, y2, score] of the separate bright regions, the largest first."""
    count, _, stats, _ = cv2.connectedComponentsWithStats((frame.min(axis=2) > threshold).astype(np.uint8))
    regions = sorted((stats[k] for k in range(1, count) if stats[k][cv2.CC_STAT_AREA] >= 50),
                     key=lambda row: -row[cv2.CC_STAT_AREA])
    return np.array([[x, y, x + w, y + h, 0.99] for x, y, w, h, _ in regions], np.float32).reshape(-1, 5)
