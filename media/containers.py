"""Video and image I/O through PyAV: frames in as BGR uint8 (or kept in YUV as ``Picture``s),
H.264 + AAC mp4 out. No shell.

Reading streams one frame at a time, so memory does not grow with the video's length;
rotation metadata (phone videos) is applied, and variable-frame-rate video is brought to a
constant rate by timestamps, as a player shows it. Colours convert exactly, by the input's
colour description, and the output carries that description (see media/yuv.py).
"""

import collections
import contextlib
import dataclasses
import os
import stat
import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import soxr

from media.yuv import BT601, FULL, LIMITED, Colour, Picture, scaled
from system.atomic_write import atomic_output
from system.errors import UserError, naming

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}
AAC_RATES = {96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350}
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM")
_YUV_8BIT = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv440p", "yuvj440p",
             "yuv411p", "yuv410p"}
_SEMI_PLANAR = {"nv12": "yuv420p", "nv21": "yuv420p", "p010le": "yuv420p", "nv16": "yuv422p", "nv24": "yuv444p"}


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    fps: Fraction  # the constant rate frames are read at
    width: int  # after rotation
    height: int
    frame_count: int  # estimated from the duration (too low where timestamps restart); reading gives the exact number
    rotation: int  # degrees counter-clockwise applied to each decoded frame
    variable_rate: bool
    colour: Colour = BT601
    yuv420: bool = False  # frames are YUV 4:2:0, so ``read_pictures`` keeps them as they are


def is_image(path):
    """A still image, recognised by its extension (any case) or, failing that, its first bytes."""
    path = Path(path)
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return True
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False  # a FIFO's bytes, once read, are gone (and opening one can wait forever)
        with open(path, "rb") as handle:
            head = handle.read(12)
    except OSError:
        return False
    return head.startswith(_IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def visible(paths, root):
    """``paths`` (found below ``root``) without the hidden ones: a name starting with "." is
    an unfinished temporary of an atomic write, or an editor's or a file manager's file."""
    root = Path(root)
    return [path for path in paths if not any(part.startswith(".") for part in Path(path).relative_to(root).parts)]


def read_image(path):
    """A still image as BGR uint8 (paths with any characters work)."""
    path = _existing(path, "image")
    image = cv2.imdecode(np.fromfile(str(path), dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"cannot read {path} as an image")
    return image


def write_jpeg(path, image):
    """``image`` as a JPEG file, at OpenCV's default quality as cv2.imwrite writes it; a
    failed write raises the OSError that says why (cv2.imwrite only returns False, on a
    full disk too)."""
    ok, encoded = cv2.imencode(".jpg", image)
    if not ok:
        raise UserError(f"cannot encode a {image.shape} image as JPEG for {path}")
    with naming(path), open(path, "wb") as handle:
        handle.write(encoded.tobytes())


def probe_video(path):
    """Frame rate, size and rotation of the first video stream, without decoding it all."""
    with open_media(path, "video") as container:
        stream = _video_stream(container, path)
        first = next(_decode(container, stream, path), None)
        if first is None:
            raise UserError(f"{path} has a video stream with no frames")
        fps = _frame_rate(stream)
        rotation = _rotation(first)
        width, height = (first.height, first.width) if rotation % 180 else (first.width, first.height)
        seconds = float(stream.duration * stream.time_base) if stream.duration else (container.duration or 0) / 1e6
        average = stream.average_rate
        variable = bool(average) and abs(float(average) - float(fps)) > 0.01 * float(fps)
        return VideoInfo(fps, width, height, max(1, round(seconds * fps)), rotation, variable,
                         _colour(first), _yuv_format(first) in ("yuv420p", "yuvj420p"))


def stream_ends(path):
    """{"video": seconds, "audio": seconds, ...}: where the first stream of each kind in a media
    file ends as a player presents it (its last packet's pts + duration), as a Fraction."""
    with open_media(path, "media") as container:
        first = {}
        for stream in container.streams:
            first.setdefault(stream.type, stream)
        ends = dict.fromkeys(first)
        for packet in container.demux(*first.values()):
            if packet.pts is not None:
                end = (packet.pts + packet.duration) * packet.stream.time_base
                ends[packet.stream.type] = max(end, ends[packet.stream.type] or end)
        return ends


def read_frames(path, fps=None):
    """Yield the video's frames as upright BGR uint8 arrays at a constant ``fps``.

    ``fps`` defaults to the stream's nominal rate. Each output slot k (at k / fps seconds)
    shows the latest frame due by then, so a constant-rate video at its own rate comes out
    frame for frame, and a variable-rate one keeps its timing. Frames whose size differs from
    the first one's (segments of two sizes joined) are scaled to it.
    """
    # Converted per slot: a repeated frame is a fresh array.
    images = (_upright(_bgr(frame, _yuv_planes(frame)), frame) for frame in _decoded_at_rate(path, fps))
    yield from _at_first_size(images, path)


def read_pictures(path, fps=None):
    """``read_frames``, but each frame an upright ``Picture`` in its own YUV 4:2:0 planes
    (frames in other formats are converted)."""
    yield from _at_first_size((_upright(_picture(frame), frame) for frame in _decoded_at_rate(path, fps)), path)


def _picture(frame):
    colour, planes = _colour(frame), _yuv_planes(frame)
    if planes and planes[1].shape == _half(planes[0].shape):
        return Picture(*planes, colour)
    return Picture.from_bgr(_bgr(frame, planes), colour)


_SIZE_CHANGE_WARNED = set()  # paths warned about: a looped input is decoded anew for each pass


def _at_first_size(images, path):
    """``images`` (BGR arrays or Pictures), those of another size than the first scaled to its
    size (a stream whose frame size changes part way: joined segments, a new H.264 SPS), which
    one line on stderr says, once per path."""
    first = None
    for index, image in enumerate(images):
        height, width = image.shape[:2]
        if first is None:
            first = width, height
        elif (width, height) != first:
            if str(path) not in _SIZE_CHANGE_WARNED:
                _SIZE_CHANGE_WARNED.add(str(path))
                print(f"warning: {path}: the frame size changes from {first[0]}x{first[1]} to {width}x{height} at "
                      f"frame {index}; frames of another size are scaled to {first[0]}x{first[1]}, the first frame's",
                      file=sys.stderr)
            image = image.resized(*first) if isinstance(image, Picture) else scaled(image, *first)
        yield image


def _decoded_at_rate(path, fps):
    with open_media(path, "video") as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        fps = Fraction(fps) if fps else _frame_rate(stream)
        timed = ((None if f.pts is None else f.pts * stream.time_base, f) for f in _decode(container, stream, path))
        yield from _at_constant_rate(timed, fps)


def _at_constant_rate(timed_frames, fps):
    """Items for slots 0, 1, 2, ... at ``fps`` from (seconds or None, item) in presentation order.

    Each slot gets the latest item due by its time (items sharing a slot: the last wins). An
    item without a timestamp takes the slot after the one before it, and so does one whose
    timestamp is not after the last one seen or falls before that slot (segments joined with
    their timestamps starting again, as `cat a.ts b.ts` makes): the slots of the items after
    it count on from there, so no item is lost and their timing is kept.
    """
    start, emitted, pending, latest = None, 0, None, None
    for seconds, item in timed_frames:
        slot = emitted if pending is None else emitted + 1
        if seconds is not None:
            due = None if start is None or seconds <= latest else round((seconds - start) * fps)
            if due is not None and due >= emitted:
                slot = due
            else:
                start = seconds - Fraction(slot) / fps  # this timestamp fixes where the slots lie from here on
            latest = seconds
        while pending is not None and emitted < slot:
            yield pending
            emitted += 1
        pending = item
    if pending is not None:
        yield pending


class VideoWriter:
    """Write frames (BGR arrays or ``Picture``s) to an H.264 (yuv420p) + AAC mp4, atomically.

        with VideoWriter("out.mp4", fps, audio_path="speech.wav") as writer:
            for frame in frames:
                writer.write(frame)

    The file appears at ``path`` only when the block ends without error. Odd widths or
    heights are padded by one edge pixel (yuv420p needs even sizes). The audio of
    ``audio_path`` (any media file) is re-encoded to AAC, interleaved as frames arrive, and
    ends with the last frame (cut there, or filled with silence up to it).
    BGR frames are converted, and the stream tagged, as ``colour`` describes; pass the
    input's, so the output looks as the input does. ``metadata`` (str -> str) goes into the
    container as MP4 keys, any names kept. ``subtitles``, (start s, end s, text) cues, become a
    soft subtitle track (mov_text). ``sign``, when given, is called with the finished
    temporary file before it is renamed into place (to embed content credentials). ``threads``
    caps the encoder's threads (0: as many as x264 likes, about 1.5 per core). With ``audio_rate``
    instead of ``audio_path``, the audio comes with the frames: ``write(frame, audio=samples)``.
    """

    def __init__(self, path, fps, audio_path=None, crf=18, preset="fast", colour=BT601, metadata=None, sign=None,
                 subtitles=(), threads=0, audio_rate=None):
        self.path, self.fps, self.audio_path = Path(path), Fraction(fps).limit_denominator(100000), audio_path
        self.audio_rate = audio_rate
        self.colour, self.metadata, self.sign, self.subtitles = colour, metadata or {}, sign, subtitles
        self.options = {"crf": str(crf), "preset": preset, "threads": str(threads)}
        self.frames_written = 0

    def __enter__(self):
        # Unwound in reverse: inputs and output closed, then the temporary file renamed or removed.
        with contextlib.ExitStack() as stack:
            temporary = self._temporary = stack.enter_context(atomic_output(self.path))
            # use_metadata_tags: every key is written (the default keeps a fixed few, e.g. comment).
            self._container = av.open(temporary, "w", format="mp4", options={"movflags": "use_metadata_tags"})
            self._container.metadata.update(self.metadata)
            stack.callback(self._container.close)
            self._video, self._audio = None, None
            if self.audio_path:
                self._audio = _AudioTranscoder(self.audio_path, self._container)
                stack.callback(self._audio.close)
            elif self.audio_rate:
                self._audio = _PushedAudio(self._container, self.audio_rate)
            if self.subtitles:
                self._text = self._container.add_stream("mov_text")
                self._text.codec_context.subtitle_header = _ASS_HEADER  # the encoder's styles: defaults
            self._cleanup = stack.pop_all()
        return self

    def write(self, frame, audio=None):
        """Add a frame; with ``audio_rate``, ``audio`` is the mono float32 audio played with it."""
        if audio is not None:
            self._audio.add(audio)
        if self._video is None:
            self._open_video(frame.shape[1], frame.shape[0])
        if not isinstance(frame, Picture) or frame.colour != self.colour:
            frame = Picture.from_bgr(frame if isinstance(frame, np.ndarray) else frame.bgr(), self.colour)
        y = frame.y
        if y.shape[0] % 2 or y.shape[1] % 2:  # the chroma planes already cover the added edge
            y = cv2.copyMakeBorder(y, 0, y.shape[0] % 2, 0, y.shape[1] % 2, cv2.BORDER_REPLICATE)
        i420 = np.concatenate([y.ravel(), frame.u.ravel(), frame.v.ravel()]).reshape(-1, y.shape[1])
        for packet in self._video.encode(av.VideoFrame.from_ndarray(i420, format="yuv420p")):
            self._container.mux(packet)
        self.frames_written += 1
        if self._audio:
            self._audio.mux_until(self.frames_written / self.fps)

    def _open_video(self, width, height):
        self._video = self._container.add_stream("libx264", rate=self.fps, options=self.options)
        self._video.width, self._video.height = width + width % 2, height + height % 2
        self._video.pix_fmt = "yuv420p"
        self.colour.tag(self._video.codec_context)

    def __exit__(self, kind, error, traceback):
        if kind is not None:  # the caller's block failed: discard the file
            return self._cleanup.__exit__(kind, error, traceback)
        with self._cleanup:  # a failure while finishing discards it too
            if self._video is None:
                raise UserError(f"no frames to write to {self.path}")
            for packet in self._video.encode():
                self._container.mux(packet)
            if self._audio:  # the sound ends with the last frame
                self._audio.finish(self.frames_written / self.fps)
            for start, end, text in self.subtitles:
                self._mux_subtitle(start, end, text)
            if self.sign:
                self._container.close()  # the file complete on disk (closing again later does nothing)
                self.sign(self._temporary)

    def _mux_subtitle(self, start, end, text):
        """One mov_text sample: the text's UTF-8 length (16 bits, big-endian), then the text."""
        payload = text.encode("utf-8")[:65535]
        packet = av.Packet(len(payload).to_bytes(2, "big") + payload)
        base = self._text.time_base
        packet.stream, packet.time_base = self._text, base
        packet.pts = packet.dts = round(Fraction(start).limit_denominator(100000) / base)
        packet.duration = max(1, round(Fraction(end - start).limit_denominator(100000) / base))
        self._container.mux(packet)


_ASS_HEADER = (b"[Script Info]\nScriptType: v4.00+\n\n[V4+ Styles]\nFormat: Name, Fontname, Fontsize, PrimaryColour, "
               b"SecondaryColour, OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, "
               b"Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n"
               b"Style: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0\n\n"
               b"[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n")


class _AudioEncoder:
    """Encodes audio to AAC in an output container, a little at a time, never past the time the
    video has reached: the track ends with the video (cut there, or filled with silence up to
    it). Where the audio comes from is the subclass's ``_next_frame``.

    Each frame carries its sample position as its pts, so the encoder's first packet starts at
    minus its priming samples (1024) and the muxer's edit list skips them: sound and picture
    start together. Without pts the encoder counted from 0 and the sound came 1024 samples late
    (64 ms at 16 kHz), and the track ran on 0.1-0.2 s past the last frame.
    """

    def __init__(self, output, rate, layout, name):
        self.rate, self._output, self._path = rate, output, name
        self._stream = output.add_stream("aac", rate=rate, layout=layout)
        self._encoded = 0  # samples given to the encoder
        self._last = None  # the last frame encoded: the encoder takes only frames like it
        self._held = None  # a frame (or its tail) beyond what has been encoded

    def mux_until(self, seconds):
        """Encode the input audio up to ``seconds`` (or its end), not beyond."""
        limit = round(seconds * self.rate)
        while self._encoded < limit:
            frame = self._held or self._next_frame()
            if frame is None:
                return
            self._held = None
            if self._encoded + frame.samples > limit:
                frame, self._held = _split(frame, limit - self._encoded)
            self._encode(frame)

    def finish(self, seconds):
        """Encode the audio up to ``seconds`` exactly (silence where the input ends sooner), then
        the encoder's last packets."""
        self.mux_until(seconds)
        missing = round(seconds * self.rate) - self._encoded
        if missing > 0:
            if self._last is None:  # not a sample read: float silence in the stream's layout
                self._last = av.AudioFrame.from_ndarray(np.zeros((1, self._stream.channels), np.float32), format="flt",
                                                        layout=self._stream.layout.name)
                self._last.sample_rate = self.rate
            self._encode(_silence(self._last, missing))
        self._encode(None)

    def _encode(self, frame):
        """Encode ``frame`` at the next sample position (None: flush the encoder)."""
        try:
            if frame is not None:
                frame = _within_full_scale(frame)
                frame.pts, frame.time_base = self._encoded, Fraction(1, self.rate)
                self._encoded += frame.samples
                self._last = frame
            for packet in self._stream.encode(frame):
                self._output.mux(packet)
        except av.error.FFmpegError as error:  # its message names the hidden temporary: leave that out
            raise UserError(f"cannot encode the audio of {self._path} to AAC: {error.strerror}") from None



class _AudioTranscoder(_AudioEncoder):
    """The audio track of a media file, decoded as the video needs it."""

    def __init__(self, path, output):
        self._input = open_media(path, "audio")
        if not self._input.streams.audio:
            self._input.close()
            raise UserError(f"{path} has no audio stream")
        source = self._input.streams.audio[0]
        layout = "mono" if source.channels == 1 else "stereo"
        # The AAC encoder takes only the MPEG-4 rates (at most 96 kHz): others are resampled,
        # by soxr, as PyAV's own resampler refuses some rates (50 Hz, 100 Hz) midway.
        rate = source.rate if source.rate in AAC_RATES else 48000
        super().__init__(output, rate, layout, path)
        self._frames = self._input.decode(source)
        if rate != source.rate:
            self._frames = _resampled(self._frames, source.rate, rate, layout)

    def _next_frame(self):
        try:
            return next(self._frames, None)
        except av.error.FFmpegError as error:
            raise UserError(f"cannot read audio from {self._path}: {error.strerror}") from None

    def close(self):
        self._input.close()


class _PushedAudio(_AudioEncoder):
    """Mono float32 samples handed over with the frames (a stream's), encoded as the video goes."""

    def __init__(self, output, rate):
        super().__init__(output, rate, "mono", "the stream")
        self._pushed = collections.deque()

    def add(self, samples):
        frame = av.AudioFrame.from_ndarray(np.asarray(samples, np.float32).reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = self.rate
        self._pushed.append(frame)

    def _next_frame(self):
        return self._pushed.popleft() if self._pushed else None

    def close(self):
        self._pushed.clear()


def _split(frame, samples):
    """(the first ``samples`` of an audio frame, the rest) as two frames."""
    array = frame.to_ndarray()
    at = samples * (1 if frame.format.is_planar else len(frame.layout.channels))
    head, tail = (_audio_frame(part, frame) for part in (array[:, :at], array[:, at:]))
    return head, tail


def _silence(like, samples):
    """``samples`` of silence as a frame like ``like``."""
    array = like.to_ndarray()
    return _audio_frame(np.zeros((array.shape[0], samples * array.shape[1] // like.samples), array.dtype), like)


def _audio_frame(array, like):
    """``array`` as an audio frame in the format, layout and rate of ``like``."""
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(array), format=like.format.name, layout=like.layout.name)
    frame.sample_rate = like.sample_rate
    return frame


_FLOAT_SAMPLES = {"flt", "fltp", "dbl", "dblp"}


def _resampled(frames, rate, to_rate, layout):
    """Audio ``frames`` at ``rate`` as float frames of ``layout`` at ``to_rate``, resampled in a stream."""
    channels = 1 if layout == "mono" else 2
    to_float = av.AudioResampler(format="flt", layout=layout, rate=rate)
    stream = soxr.ResampleStream(rate, to_rate, channels, dtype="float32")

    def converted(samples, last=False):
        out = stream.resample_chunk(samples, last=last)
        if len(out):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(out.reshape(1, -1)), format="flt", layout=layout)
            frame.sample_rate = to_rate
            yield frame

    for frame in frames:
        for packed in to_float.resample(frame):
            yield from converted(packed.to_ndarray().reshape(-1, channels))
    yield from converted(np.zeros((0, channels), np.float32), last=True)


def _within_full_scale(frame):
    """A float audio frame with its samples clipped to [-1, 1], as players play them: the AAC
    encoder refuses samples from about 1e15 on (inference has warned of any: audio.scan)."""
    if frame.format.name not in _FLOAT_SAMPLES:
        return frame
    samples = frame.to_ndarray()
    if not (np.abs(samples) > 1).any():
        return frame
    return _audio_frame(np.clip(samples, -1, 1), frame)


def open_media(path, what):
    """``av.open`` for reading, with one-line errors for a missing, empty or unreadable ``what`` file."""
    return _open(_existing(path, what))


# What a path may be instead of a regular file, and what to do about it.
_NOT_FILES = ((stat.S_ISDIR, "a folder", ""), (stat.S_ISFIFO, "a FIFO (a pipe)", "; save the stream to a file first"),
              (stat.S_ISCHR, "a character device", ""), (stat.S_ISBLK, "a block device", ""),
              (stat.S_ISSOCK, "a socket", ""))


def _existing(path, what):
    """``path`` when it is a regular file with something in it; else one line saying what it
    is. Only stat() looks: opening a FIFO to see could wait forever for a writer."""
    path = Path(path)
    try:
        status = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise UserError(f"{what} file not found: {path}") from None
    for is_kind, kind, advice in _NOT_FILES:
        if is_kind(status.st_mode):
            raise UserError(f"{what} file {path} is {kind}: a regular file is needed{advice}")
    if status.st_size == 0:
        raise UserError(f"{what} file is empty: {path}")
    return path


def _open(path):
    try:
        return av.open(str(path))
    except av.error.FFmpegError as error:
        raise UserError(f"cannot read {path} as media: {error}") from None


def _video_stream(container, path):
    if not container.streams.video:
        raise UserError(f"{path} has no video stream")
    return container.streams.video[0]


def _decode(container, stream, path):
    try:
        yield from container.decode(stream)
    except av.error.FFmpegError as error:
        raise UserError(f"cannot decode the video of {path}: {error}") from None


def _frame_rate(stream):
    rate = stream.guessed_rate or stream.average_rate or stream.base_rate
    if not rate:
        raise UserError("the video stream has no frame rate")
    return Fraction(rate.numerator, rate.denominator)


def _rotation(frame):
    """Counter-clockwise degrees the display matrix asks for, as a multiple of 90."""
    return int(round((getattr(frame, "rotation", 0) or 0) / 90)) % 4 * 90


def _upright(image, frame):
    """``image`` (BGR or a Picture of ``frame``) turned as the display matrix asks."""
    turns = _rotation(frame) // 90
    if not turns:
        return image
    return image.rotated(turns) if isinstance(image, Picture) else np.ascontiguousarray(np.rot90(image, turns))


def _bgr(frame, planes):
    """The frame as BGR uint8, converted exactly by its colour description from its YUV
    ``planes`` (``_yuv_planes``)."""
    if planes is None:  # RGB, grey or palette pictures: no matrix involved
        return frame.to_ndarray(format="bgr24")
    return Colour.of_frame(frame).to_bgr(*planes)


def _colour(frame):
    """What the frame's numbers mean; frames not in YUV are converted as BGR frames are."""
    return Colour.of_frame(frame) if _yuv_format(frame) else BT601


def _yuv_planes(frame):
    """The Y, U and V planes of a YUV frame as uint8 arrays (deeper formats brought to 8 bits
    by libswscale, which keeps their range); None for other formats."""
    name = _yuv_format(frame)
    if not name:
        return None
    if name != frame.format.name:
        colour_range = FULL if Colour.of_frame(frame).range == FULL else LIMITED
        frame = frame.reformat(format=name, src_color_range=colour_range, dst_color_range=colour_range)
    return [np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, :plane.width].copy()
            for plane in frame.planes[:3]]


def _yuv_format(frame):
    """The 8-bit planar YUV format ``frame``'s pixels are read in, or "" when it is not YUV."""
    name = frame.format.name
    if name in _YUV_8BIT:
        return name
    if name in _SEMI_PLANAR:
        return _SEMI_PLANAR[name]
    base = name.replace("yuva", "yuv").split("p")[0] + "p"  # yuv420p10le -> yuv420p
    return base if base in _YUV_8BIT else ""


def _half(shape):
    return (shape[0] + 1) // 2, (shape[1] + 1) // 2
