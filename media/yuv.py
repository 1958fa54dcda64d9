"""Video's YUV planes and BGR: one exact, matched conversion, by the video's colour description.

libswscale's default BGR conversion rounds towards dark (about one grey level) and knows only
BT.601; here decoding and encoding are one matched pair of affine maps, so a frame converted to
BGR and back comes out as it went in (to within rounding), whatever its matrix and range.
Chroma is upsampled by repeating each sample over its block and downsampled by averaging the
block: the one pair that gives the planes back unchanged.

A ``Picture`` keeps a frame in its own 4:2:0 planes, so the pixels inference never touches
go from the input to the output without leaving YUV.
"""

import contextlib
import dataclasses

import cv2
import numpy as np

# FFmpeg's codes (AVColorSpace, AVColorRange, AVColorPrimaries, AVColorTransferCharacteristic).
UNSPECIFIED, LIMITED, FULL = 2, 1, 2
_WEIGHTS = {1: (0.2126, 0.0722),  # BT.709: (Kr, Kb)
            4: (0.30, 0.11),  # FCC
            5: (0.299, 0.114), 6: (0.299, 0.114),  # BT.601 (BT.470BG, SMPTE 170M)
            7: (0.212, 0.087),  # SMPTE 240M
            9: (0.2627, 0.0593), 10: (0.2627, 0.0593)}  # BT.2020


@dataclasses.dataclass(frozen=True)
class Colour:
    """What a video's YUV numbers mean, as its tags say (FFmpeg's codes).

    An unspecified matrix is converted as BT.601, as FFmpeg does (and as the frames the
    released networks were trained on were decoded), an unspecified range as limited; both
    stay unspecified in the output's tags, so a player guesses for it as it did for the input.
    The default describes frames made in BGR (still images, synthetic clips): BT.601, limited.
    """

    matrix: int = 5
    range: int = LIMITED
    primaries: int = 6
    transfer: int = 6

    @classmethod
    def of_frame(cls, frame):
        """The description a decoded PyAV frame carries (yuvj formats are full range)."""
        full = frame.color_range == FULL or (frame.color_range != LIMITED and frame.format.name.startswith("yuvj"))
        return cls(int(frame.colorspace), FULL if full else int(frame.color_range),
                   int(frame.color_primaries), int(frame.color_trc))

    def tag(self, codec_context):
        """Say in an output stream what its numbers mean, so players show it as the input."""
        codec_context.colorspace, codec_context.color_range = self.matrix, self.range
        codec_context.color_primaries, codec_context.color_trc = self.primaries, self.transfer

    def to_bgr(self, y, u, v):
        """BGR uint8 (h, w, 3) from a luma plane (h, w) and chroma planes of any subsampling."""
        height, width = y.shape
        planes = [y] + [p if p.shape == y.shape else
                        cv2.resize(p, (width, height), interpolation=cv2.INTER_NEAREST) for p in (u, v)]
        return cv2.transform(cv2.merge(planes), self._maps()[1])  # rounds and saturates to uint8

    def to_yuv420(self, bgr):
        """(y, u, v) uint8 planes from BGR uint8: luma (h, w), chroma (ceil(h/2), ceil(w/2))."""
        to_yuv = self._maps()[0]
        y = cv2.transform(bgr, to_yuv[:1])
        height, width = bgr.shape[:2]
        if height % 2 or width % 2:  # the last chroma sample covers the edge pixels alone
            bgr = cv2.copyMakeBorder(bgr, 0, height % 2, 0, width % 2, cv2.BORDER_REPLICATE)
        # Four times the block means, exactly, in uint16; the affine map divides by four.
        sums = cv2.resize(bgr.astype(np.uint16) << 2, (bgr.shape[1] // 2, bgr.shape[0] // 2),
                          interpolation=cv2.INTER_AREA)
        chroma = to_yuv[1:] * np.array([0.25, 0.25, 0.25, 1], np.float32)
        u, v = cv2.split(cv2.transform(sums, chroma))
        return y, np.minimum(u, 255).astype(np.uint8), np.minimum(v, 255).astype(np.uint8)

    def _maps(self):
        return _affine_maps(_WEIGHTS.get(self.matrix, _WEIGHTS[6]), self.range == FULL)


BT601 = Colour()  # how frames made in BGR (still images, synthetic clips) are written


def scaled(image, width, height):
    """``image`` (a plane or BGR) scaled to width x height: by area means when it shrinks,
    which does not alias, bilinearly when it grows."""
    shrinking = width <= image.shape[1] and height <= image.shape[0]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


_MAPS = {}


def _affine_maps(weights, full_range):
    """(BGR -> YUV, YUV -> BGR) as 3x4 affine matrices for cv2.transform."""
    if (weights, full_range) not in _MAPS:
        kr, kb = weights
        kg = 1 - kr - kb
        # Y', Pb, Pr from B, G, R, all on a 0..255 scale.
        analog = np.array([[kb, kg, kr],
                           [0.5, -0.5 * kg / (1 - kb), -0.5 * kr / (1 - kb)],
                           [-0.5 * kb / (1 - kr), -0.5 * kg / (1 - kr), 0.5]])
        scale = np.eye(3) if full_range else np.diag([219, 224, 224]) / 255
        offset = np.array([[0 if full_range else 16], [128], [128]])
        forward = scale @ analog
        inverse = np.linalg.inv(forward)
        _MAPS[weights, full_range] = (np.hstack([forward, offset]).astype(np.float32),
                                      np.hstack([inverse, -inverse @ offset]).astype(np.float32))
    return _MAPS[weights, full_range]


class Picture:
    """A frame kept in its own YUV 4:2:0 planes; BGR is made only where it is asked for.

        picture.bgr()                    the whole frame
        with picture.editing(box) as (region, inner):
            ...                          change ``region`` (BGR) where ``inner`` lies in it
    """

    def __init__(self, y, u, v, colour):
        self.y, self.u, self.v, self.colour = y, u, v, colour

    @classmethod
    def from_bgr(cls, bgr, colour):
        return cls(*colour.to_yuv420(bgr), colour)

    @property
    def shape(self):
        return self.y.shape

    def bgr(self):
        return self.colour.to_bgr(self.y, self.u, self.v)

    def copy(self):
        return Picture(self.y.copy(), self.u.copy(), self.v.copy(), self.colour)

    def resized(self, width, height):
        """Scaled to width x height, each plane on its own (chroma to its 4:2:0 size)."""
        chroma = (width + 1) // 2, (height + 1) // 2
        return Picture(scaled(self.y, width, height), *(scaled(p, *chroma) for p in (self.u, self.v)), self.colour)

    def rotated(self, turns):
        """Turned ``turns`` x 90 degrees counter-clockwise, as np.rot90 turns an image."""
        return Picture(*(np.ascontiguousarray(np.rot90(p, turns)) for p in (self.y, self.u, self.v)), self.colour)

    def cropped(self, y1, y2, x1, x2):
        """Rows y1:y2 and columns x1:x2, when y1 and x1 are even (chroma blocks stay whole); else None."""
        if y1 % 2 or x1 % 2:
            return None
        return Picture(self.y[y1:y2, x1:x2].copy(), *(p[y1 // 2:-(-y2 // 2), x1 // 2:-(-x2 // 2)].copy()
                                                       for p in (self.u, self.v)), self.colour)

    def bgr_within(self, box):
        """``bgr()[y1:y2, x1:x2]`` for ``box`` = (y1, y2, x1, x2), converting only the box."""
        y1, y2, x1, x2 = box
        top, left = y1 - y1 % 2, x1 - x1 % 2
        return self.cropped(top, y2, left, x2).bgr()[y1 - top:, x1 - left:]

    @contextlib.contextmanager
    def editing(self, box):
        """The BGR of ``box`` = (y1, y2, x1, x2), grown to whole chroma blocks, written back to
        the planes at the end; yields (region, box within the region)."""
        y1, y2, x1, x2 = box
        top, left = y1 - y1 % 2, x1 - x1 % 2
        bottom, right = min(y2 + y2 % 2, self.y.shape[0]), min(x2 + x2 % 2, self.y.shape[1])
        part = self.cropped(top, bottom, left, right)
        region = part.bgr()
        yield region, (y1 - top, y2 - top, x1 - left, x2 - left)
        y, u, v = self.colour.to_yuv420(region)
        self.y[top:bottom, left:right] = y
        self.u[top // 2:top // 2 + u.shape[0], left // 2:left // 2 + u.shape[1]] = u
        self.v[top // 2:top // 2 + v.shape[0], left // 2:left // 2 + v.shape[1]] = v


def bgr_of(frame, box=None):
    """A frame (BGR array or Picture) as BGR: whole, or only ``box`` = (y1, y2, x1, x2)."""
    if isinstance(frame, Picture):
        return frame.bgr() if box is None else frame.bgr_within(box)
    if box is None:
        return frame
    y1, y2, x1, x2 = box
    return frame[y1:y2, x1:x2]
