"""A stand-in for S3FD on the synthetic faces of media.synthetic: the face is the bright box."""

import numpy as np


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
        """Like S3FDDetector.detect: one box or None per frame, or with ``select``, (k, 5) arrays."""
        BrightBoxDetector.calls.append(frames.shape)
        found = [None if (box := bright_box(f)) is None else np.array([*box, 0.99], np.float32) for f in frames]
        if select is None:
            return found
        return [np.zeros((0, 5), np.float32) if box is None else box[None] for box in found]
