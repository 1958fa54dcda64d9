"""The input frames as the pipeline sees them: prepared (resized, rotated, cropped), and in
the order the output shows them (looped or stretched when the audio is longer)."""

from fractions import Fraction

import cv2
import numpy as np

from media.containers import (
    is_image,
    probe_video,
    read_frames,
    read_image,
    read_pictures,
)
from media.yuv import BT601
from system.errors import UserError


def transform_frame(frame, resize_factor=1, rotate=False, crop=(0, -1, 0, -1), resize_to=()):
    """The reference's per-frame preparation: resize by an integer factor, rotate 90 degrees clockwise, crop.

    ``resize_to`` sizes come first (the evaluation scripts scale frames to a face size this way).
    """
    for size in resize_to:
        frame = cv2.resize(frame, tuple(size))
    if resize_factor > 1:
        frame = cv2.resize(frame, (frame.shape[1] // resize_factor, frame.shape[0] // resize_factor))
    if rotate:
        frame = cv2.rotate(frame, cv2.ROTATE_90_CLOCKWISE)
    y1, y2, x1, x2 = _absolute(crop, frame.shape)
    return np.ascontiguousarray(frame[y1:y2, x1:x2])


def transform_picture(picture, rotate=False, crop=(0, -1, 0, -1)):
    """``transform_frame`` (without resizing) on a Picture's planes; None when the crop would
    split chroma blocks."""
    if rotate:
        picture = picture.rotated(-1)
    return picture.cropped(*_absolute(crop, picture.shape))


def _absolute(crop, shape):
    y1, y2, x1, x2 = crop
    return y1, shape[0] if y2 == -1 else y2, x1, shape[1] if x2 == -1 else x2


def stretched_indices(count, length):
    """Input frame of each of ``length`` output frames when ``count`` frames are stretched by
    repeating frames evenly, for TTS audio longer than its video.

    The reference evaluation's increase_frames meant this, but its test for the next duplicate
    only ever fires at the first frame, freezing it; here the repeats are spread evenly.
    """
    return [k * count // length for k in range(length)]


class FrameSource:
    """The prepared frames of --face: a video, decoded anew for each pass, or a still image.

        source.fps, source.frame_size, source.static, source.colour
        source.frame_count     how many frames one pass gives (a video's: estimated from its duration)
        source.described       what the frames are, as messages name them ("the image PATH", ...)
        source.frames()        one pass over the input (its first frame only when static)
        source.looped()        output frame i's input frame, for i = 0, 1, 2, ...
        source.repeats         with stretch: how many output frames show each input frame

    With ``pictures=True`` (when ``keeps_yuv``) frames() and looped() give ``Picture``s, so
    the pixels that are not pasted over reach the output in the input's own YUV numbers.
    """

    def __init__(self, options):
        self.options, self.image, self.repeats = options, None, None
        if is_image(options.face):
            image = read_image(options.face)
            self.frame_size = options.frame_size(image.shape[1], image.shape[0])
            self.image = self._prepare(image)
            self.static, self.fps = True, Fraction(options.fps).limit_denominator(1001)
            self.frame_count = 1
            self.colour, self.keeps_yuv = BT601, False
        else:
            info = probe_video(options.face)
            self.static, self.fps = options.static, info.fps
            self.frame_count = 1 if self.static else info.frame_count  # estimated from the duration
            self.frame_size = options.frame_size(info.width, info.height)
            o = options
            self.colour = info.colour
            self.keeps_yuv = info.yuv420 and o.resize_factor == 1 and not o.resize_to and \
                o.crop[0] % 2 == 0 and o.crop[2] % 2 == 0

    @property
    def described(self):
        """What the frames are, as messages name them."""
        if self.image is not None:
            return f"the image {self.options.face}"
        if self.static:
            return f"the first frame of the video {self.options.face} (--static)"
        return f"the video {self.options.face}"

    def stretch_to(self, total):
        """With --short_video stretch, spread a video shorter than ``total`` frames over them."""
        if self.options.short_video == "stretch" and not self.static:
            count = sum(1 for _ in read_frames(self.options.face))
            if count < total:
                self.repeats = np.bincount(stretched_indices(count, total), minlength=count)

    def times_shown(self, index):
        return 1 if self.repeats is None else self.repeats[index]

    def _prepare(self, frame):
        o = self.options
        return transform_frame(frame, o.resize_factor, o.rotate, o.crop, o.resize_to)

    def frames(self, pictures=False):
        """One pass over the prepared input frames (just the first one when static)."""
        if self.image is not None:
            yield self.image
            return
        o = self.options
        for frame in read_pictures(o.face) if pictures else read_frames(o.face):
            yield transform_picture(frame, o.rotate, o.crop) if pictures else self._prepare(frame)
            if self.static:
                return

    def looped(self, pictures=False):
        """Input frame i mod N for output frames i = 0, 1, 2, ... (re-decoding for each loop),
        or each input frame as often as ``repeats`` says. A frame shown again is the same
        object (a still: one frame however long the audio): paste into a copy."""
        if self.repeats is not None:
            for frame, times in zip(self.frames(pictures), self.repeats):
                for _ in range(times):
                    yield frame
            return
        if self.static:
            first = next(self.frames(pictures))
            while True:
                yield first
        while True:
            count = 0
            for count, frame in enumerate(self.frames(pictures), 1):
                yield frame
            if count == 0:
                raise UserError(f"no frames could be read from {self.options.face}")
