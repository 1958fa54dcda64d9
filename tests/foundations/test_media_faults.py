"""Odd inputs that media must neither drop frames from nor crash on: MPEG-TS segments joined
byte for byte (timestamps restart, the frame size may change), and paths that are not files."""

import io
import os
import re
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from media import containers
from media.yuv import BT601, Picture
from system.errors import UserError


def ts_segment(levels, size=(64, 32)):
    """MPEG-TS bytes of near-lossless H.264 frames, frame i uniformly grey at levels[i] with a
    white top-left marker an eighth of the frame wide; timestamps from 0, as each segment has."""
    width, height = size
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mpegts") as container:
        stream = container.add_stream("libx264", rate=25, options={"crf": "0", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for level in levels:
            image = np.full((height, width, 3), level, np.uint8)
            image[:height // 4, :width // 8] = 255
            frame = av.VideoFrame.from_ndarray(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420), format="yuv420p")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def joined(path, *segments):
    """The segments' bytes one after another, as `cat a.ts b.ts > path` writes them."""
    path.write_bytes(b"".join(segments))
    return path


def levels_of(images):
    """The grey level of each BGR frame, away from its marker."""
    return [int(round(image[image.shape[0] // 2:, image.shape[1] // 4:].mean())) for image in images]


FIRST, SECOND = list(range(20, 120, 10)), list(range(130, 230, 10))


def test_timestamps_that_restart_keep_every_frame_in_order(tmp_path):
    path = joined(tmp_path / "joined.ts", ts_segment(FIRST), ts_segment(SECOND))
    frames = list(containers.read_frames(path))
    assert np.allclose(levels_of(frames), FIRST + SECOND, atol=2)
    pictures = list(containers.read_pictures(path))
    assert np.allclose(levels_of(p.bgr() for p in pictures), FIRST + SECOND, atol=2)


def test_timestamps_going_back_continue_after_the_frame_before():
    at_25 = lambda timed: list(containers._at_constant_rate(timed, Fraction(25)))  # noqa: E731
    tick = Fraction(1, 25)
    # Two segments from 0: the second follows the first, frame for frame.
    assert at_25([(i % 3 * tick, i) for i in range(6)]) == list(range(6))
    # A jump back part way: the frame after it takes the next slot, and the timing of those
    # after it (here a gap of two slots) is kept from there on.
    assert at_25([(0, "a"), (2 * tick, "b"), (tick, "c"), (3 * tick, "d")]) == ["a", "a", "b", "c", "c", "d"]
    # A timestamp behind the slots that frames without one have taken: after them, not over one.
    assert at_25([(0, "a"), (None, "b"), (None, "c"), (tick, "d"), (2 * tick, "e")]) == ["a", "b", "c", "d", "e"]
    # Two frames with one timestamp: both shown, one after the other.
    assert at_25([(0, "a"), (tick, "b"), (tick, "c"), (2 * tick, "d")]) == ["a", "b", "c", "d"]


@pytest.mark.parametrize("second_size", [(128, 64), (32, 16), (96, 24)])
def test_a_frame_size_change_is_scaled_to_the_first_frames_size_with_one_warning(tmp_path, capsys, second_size):
    path = joined(tmp_path / "resized.ts", ts_segment(FIRST), ts_segment(SECOND, second_size))
    for _ in range(2):  # decoded anew for each pass (a looped --face): warned once all the same
        frames = list(containers.read_frames(path))
        assert [f.shape for f in frames] == [(32, 64, 3)] * 20
        assert np.allclose(levels_of(frames), FIRST + SECOND, atol=3)
        assert all(f[:6, :6].min() > 240 and f[10:, 10:].max() < 240 for f in frames)  # scaled, not cropped
    pictures = list(containers.read_pictures(path))
    assert [(p.y.shape, p.u.shape, p.v.shape) for p in pictures] == [((32, 64), (16, 32), (16, 32))] * 20
    assert np.allclose(levels_of(p.bgr() for p in pictures), FIRST + SECOND, atol=3)
    warnings = capsys.readouterr().err.splitlines()
    width, height = second_size
    assert warnings == [f"warning: {path}: the frame size changes from 64x32 to {width}x{height} at frame 10; "
                        "frames of another size are scaled to 64x32, the first frame's"]


def test_an_odd_first_size_keeps_its_chroma_geometry_when_later_frames_are_scaled():
    picture = Picture(*(np.full(shape, 100, np.uint8) for shape in ((48, 96), (24, 48), (24, 48))), BT601)
    scaled = picture.resized(33, 17)
    assert [p.shape for p in (scaled.y, scaled.u, scaled.v)] == [(17, 33), (9, 17), (9, 17)]
    assert scaled.y.min() == scaled.y.max() == 100


@pytest.mark.parametrize("kind, made, described", [
    ("fifo", lambda path: os.mkfifo(path), r"is a FIFO \(a pipe\): a regular file is needed; save the stream to a "
                                           r"file first"),
    ("folder", lambda path: path.mkdir(), "is a folder: a regular file is needed"),
])
def test_a_path_that_is_not_a_regular_file_is_named_for_what_it_is(tmp_path, kind, made, described):
    path = tmp_path / kind
    made(path)  # a FIFO without a writer: opening it to read would wait forever
    for role, call in (("video", containers.probe_video), ("video", lambda p: list(containers.read_frames(p))),
                       ("audio", lambda p: containers.open_media(p, "audio")), ("image", containers.read_image)):
        with pytest.raises(UserError, match=f"^{role} file {re.escape(str(path))} {described}$"):
            call(path)


def test_a_device_is_named_for_what_it_is():
    with pytest.raises(UserError, match="^audio file /dev/zero is a character device: a regular file is needed$"):
        containers.open_media("/dev/zero", "audio")


def test_a_fifo_is_not_read_to_see_whether_it_is_an_image(tmp_path):
    fifo = tmp_path / "photo"
    os.mkfifo(fifo)
    writer = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # a writer, so opening to read would not wait
    try:
        os.write(writer, b"\x89PNG\r\n\x1a\n" + bytes(8))
        assert not containers.is_image(fifo)
        assert os.read(writer, 16).startswith(b"\x89PNG")  # nothing of the stream was taken
    finally:
        os.close(writer)


def test_a_missing_file_is_still_not_found(tmp_path):
    with pytest.raises(UserError, match=f"^video file not found: {re.escape(str(tmp_path / 'nope.mp4'))}$"):
        containers.probe_video(tmp_path / "nope.mp4")


@pytest.mark.parametrize("rate, channels", [(100, 1), (50, 2), (200000, 2)])
def test_audio_at_a_rate_aac_cannot_take_is_resampled_to_48_khz_whole(tmp_path, rate, channels):
    # PyAV's own resampler refused 50 and 100 Hz midway, in an error naming the hidden temporary.
    samples = np.sin(np.arange(rate * 2) * 2 * np.pi * 3 / rate) * 8000
    wav = tmp_path / "odd.wav"
    with av.open(str(wav), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=rate, layout="mono" if channels == 1 else "stereo")
        frame = av.AudioFrame.from_ndarray(np.tile(samples.astype(np.int16), channels)[None],
                                           format="s16", layout=stream.layout.name)
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    out = tmp_path / "out.mp4"
    with containers.VideoWriter(out, 25, audio_path=wav) as writer:
        for _ in range(50):
            writer.write(np.zeros((16, 16, 3), np.uint8))
    with av.open(str(out)) as container:
        audio = container.streams.audio[0]
        assert (audio.rate, audio.channels) == (48000, channels)
        assert float(audio.duration * audio.time_base) == pytest.approx(2.0, abs=0.05)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.wav", "out.mp4"]
