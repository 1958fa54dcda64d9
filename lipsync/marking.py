"""Marking lip-synced video as synthetic: the flags, and the opt-in visible label (--label
"TEXT", drawn in a corner of every output frame). The metadata itself: media/provenance.py."""

import functools

import cv2
import numpy as np

from media.yuv import Picture
from system.errors import UserError

CORNERS = ("bottom-right", "bottom-left", "top-right", "top-left")
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def add_marking_flags(parser, label=True):
    """--unmarked, and (with ``label``) --label, --label_corner and --label_size."""
    group = parser.add_argument_group("marking the output as synthetic")
    group.add_argument("--unmarked", action="store_true",
                       help="leave out the metadata that says the video is synthetic (IPTC digital source type, "
                            "software, checkpoint); a warning says so")
    group.add_argument("--c2pa_cert", metavar="CHAIN.pem",
                       help="also embed C2PA content credentials, signed with this certificate chain (signer first)")
    group.add_argument("--c2pa_key", metavar="KEY.pem", help="the private key of --c2pa_cert's first certificate")
    if label:
        group.add_argument("--label", metavar="TEXT", help='draw TEXT (e.g. "AI-generated") in a corner of every frame')
        group.add_argument("--label_corner", choices=CORNERS, default="bottom-right", help="where --label goes")
        group.add_argument("--label_size", type=float, default=0.04,
                           help="height of --label's capitals, as a fraction of the frame height")


def check_label(text, corner, size):
    if not text.isascii() or not text.isprintable() or not text.strip():
        raise UserError(f"--label {text!r}: give printable ASCII text (OpenCV's Hershey font draws nothing else)")
    if corner not in CORNERS:
        raise UserError(f"--label_corner must be one of {', '.join(CORNERS)}, not {corner!r}")
    if not 0 < size <= 0.5:
        raise UserError(f"--label_size {size}: give the text height as a fraction of the frame height, in (0, 0.5]")


class Label:
    """``text`` in white on a dark outline, its capital letters ``size`` x the frame height tall,
    a margin of the same height from the ``corner``'s edges."""

    def __init__(self, text, corner="bottom-right", size=0.04):
        check_label(text, corner, size)
        self.text, self.corner, self.size = text, corner, size

    def draw(self, frame):
        """Draw on ``frame`` (BGR or a Picture) in place; the text is clipped to the frame."""
        height, width = frame.shape[:2]
        patch, alpha, (y1, x1) = _rendered(self.text, self.corner, self.size, width, height)
        y2, x2 = min(y1 + patch.shape[0], height), min(x1 + patch.shape[1], width)
        patch, alpha = patch[:y2 - y1, :x2 - x1], alpha[:y2 - y1, :x2 - x1]
        if isinstance(frame, Picture):  # only the label's chroma blocks leave YUV
            with frame.editing((y1, y2, x1, x2)) as (region, (top, _, left, _)):
                _blend(region[top:top + patch.shape[0], left:left + patch.shape[1]], patch, alpha)
            return
        _blend(frame[y1:y2, x1:x2], patch, alpha)


def _blend(region, patch, alpha):
    region[:] = np.rint(region + alpha[..., None] * (patch.astype(np.float32) - region)).astype(np.uint8)


@functools.lru_cache(maxsize=4)
def _rendered(text, corner, size, width, height):
    """The label drawn once for a frame size: (BGR patch, its opacity 0..1, (top, left))."""
    scale = size * height / cv2.getTextSize("H", _FONT, 1.0, 1)[0][1]
    thickness = max(1, round(scale * 2))
    outline = thickness + max(2, round(scale * 2))
    (text_width, text_height), baseline = cv2.getTextSize(text, _FONT, scale, outline)
    pad = outline
    patch = np.zeros((text_height + baseline + 2 * pad, text_width + 2 * pad, 3), np.uint8)
    mask = np.zeros(patch.shape[:2], np.uint8)
    origin = (pad, pad + text_height)
    for target, colour in ((patch, (32, 32, 32)), (mask, 255)):
        cv2.putText(target, text, origin, _FONT, scale, colour, outline, cv2.LINE_AA)
    cv2.putText(patch, text, origin, _FONT, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    margin = max(2, round(size * height))
    top = margin if corner.startswith("top") else max(0, height - margin - patch.shape[0])
    left = margin if corner.endswith("left") else max(0, width - margin - patch.shape[1])
    return patch, mask.astype(np.float32) / 255, (top, left)
