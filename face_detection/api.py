"""The face-alignment style entry point the reference's scripts use."""

from enum import Enum

from system.devices import pick_device
from system.errors import UserError

from .boxes import to_int_box
from .detect import S3FDDetector


class LandmarksType(Enum):
    _2D = 1
    _2halfD = 2
    _3D = 3


class NetworkSize(Enum):
    LARGE = 4


class FaceAlignment:
    """S3FD face detection behind the reference's ``FaceAlignment(...).get_detections_for_batch``.

    Only detection is provided (landmarks were never used by Wav2Lip). ``device`` defaults to
    CUDA, else Apple's MPS, else the CPU; ``path_to_detector`` defaults to face_detection/detection/sfd/s3fd.pth.
    """

    def __init__(self, landmarks_type=LandmarksType._2D, network_size=NetworkSize.LARGE, device=None,
                 flip_input=False, face_detector="sfd", verbose=False, path_to_detector=None, batch_size=None):
        if face_detector != "sfd":
            raise UserError(f"face detector {face_detector!r} is not available; only 'sfd' (S3FD) is")
        self.device = pick_device(device or "auto")
        self.face_detector = S3FDDetector(self.device, path_to_detector, batch_size)

    def get_detections_for_batch(self, images):
        """N x H x W x 3 BGR uint8 frames -> per frame (x1, y1, x2, y2) as ints, or None."""
        return [None if box is None else to_int_box(box) for box in self.face_detector.detect(images)]
