from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from media import containers
from media.synthetic import tone, write_media, write_video
from system.errors import UserError


def write_levels(path, levels, rate=Fraction(25), pts=None, rotation=None, size=(64, 32), time_base=None):
    """A video whose frame i is uniformly grey at levels[i], with a white top-left marker."""
    frames = []
    for level in levels:
        image = np.full((size[1], size[0], 3), level, np.uint8)
        image[:8, :8] = 255
        frames.append(image)
    return write_video(path, frames, rate, rotation, pts, time_base)


def levels_of(frames):
    return [int(round(frame[16:, 16:].mean())) for frame in frames]


def test_constant_rate_video_is_read_frame_for_frame_at_its_rate(tmp_path):
    levels = list(range(20, 220, 20))
    path = write_levels(tmp_path / "ntsc.mp4", levels, rate=Fraction(30000, 1001))
    info = containers.probe_video(path)
    assert info.fps == Fraction(30000, 1001) and not info.variable_rate
    assert (info.width, info.height, info.rotation, info.frame_count) == (64, 32, 0, 10)
    frames = list(containers.read_frames(path))
    assert [f.shape for f in frames] == [(32, 64, 3)] * 10 and frames[0].dtype == np.uint8
    assert np.allclose(levels_of(frames), levels, atol=2)


def test_variable_rate_video_keeps_its_timing(tmp_path):
    # Frames at 0, 40, 80, 200 and 240 ms: at 25 fps the third is shown for three slots.
    path = write_levels(tmp_path / "vfr.mp4", [30, 60, 90, 120, 150], pts=[0, 40, 80, 200, 240],
                        time_base=Fraction(1, 1000))
    assert np.allclose(levels_of(containers.read_frames(path, fps=25)), [30, 60, 90, 90, 90, 120, 150], atol=2)


def test_constant_rate_slots_from_timestamps():
    at_25 = lambda timed: list(containers._at_constant_rate(timed, Fraction(25)))  # noqa: E731
    # Frame for frame at the stream's own rate, wherever its timestamps start.
    assert at_25([(Fraction(7, 5) + Fraction(i, 25), i) for i in range(4)]) == [0, 1, 2, 3]
    # A gap repeats the frame shown; two frames in one slot keep the later.
    assert at_25([(0, "a"), (Fraction(3, 25), "b"), (Fraction(3, 25) + Fraction(1, 100), "c"), (Fraction(4, 25), "d")]) == [
        "a", "a", "a", "c", "d"]
    # Frames without timestamps, first or later, each take the next slot; none is dropped.
    assert at_25([(None, "a"), (Fraction(1, 25), "b"), (None, "c"), (Fraction(5, 25), "d")]) == ["a", "b", "c", "c", "c", "d"]
    assert at_25([(None, i) for i in range(3)]) == [0, 1, 2]
    assert at_25([]) == []


def test_repeated_frames_are_separate_arrays(tmp_path):
    path = write_levels(tmp_path / "gap.mp4", [30, 60, 90], pts=[0, 40, 160], time_base=Fraction(1, 1000))
    frames = list(containers.read_frames(path, fps=25))
    assert len(frames) == 5 and np.array_equal(frames[1], frames[2])
    frames[1][:] = 0  # pasting into one output frame must not touch another
    assert frames[2].mean() > 50


@pytest.mark.parametrize("rotation, marker", [(-90, (0, -1)), (90, (-1, 0)), (180, (-1, -1)), (0, (0, 0))])
def test_rotation_metadata_is_applied(tmp_path, rotation, marker):
    path = write_levels(tmp_path / "phone.mp4", [100, 100], rotation=rotation)
    info = containers.probe_video(path)
    frames = list(containers.read_frames(path))
    expected_shape = (64, 32, 3) if rotation % 180 else (32, 64, 3)
    assert frames[0].shape == expected_shape and (info.height, info.width, 3) == expected_shape
    corner = frames[0][marker[0] * 4 + (0 if marker[0] == 0 else -1), marker[1] * 4 + (0 if marker[1] == 0 else -1)]
    assert corner.min() > 200  # the top-left marker, where a player shows it (-90: a phone's rotate=90)


def test_images_are_recognised_by_extension_or_content(tmp_path):
    image = np.zeros((10, 12, 3), np.uint8)
    image[..., 2] = 200
    for name in ("a.PNG", "b.Jpeg", "c.webp", "d.bmp"):
        cv2.imwrite(str(tmp_path / name.lower()), image)
        (tmp_path / name.lower()).rename(tmp_path / name)
        assert containers.is_image(tmp_path / name)
        assert containers.read_image(tmp_path / name).shape == (10, 12, 3)
    (tmp_path / "b.Jpeg").rename(tmp_path / "photo-without-extension")
    assert containers.is_image(tmp_path / "photo-without-extension")
    (tmp_path / "c.webp").rename(tmp_path / "webp.bin")
    assert containers.is_image(tmp_path / "webp.bin")
    assert np.allclose(containers.read_image(tmp_path / "a.PNG"), image)
    assert not containers.is_image(write_levels(tmp_path / "v.mp4", [1, 2]))
    (tmp_path / "fake.png").write_bytes(b"not an image")
    with pytest.raises(UserError, match="cannot read .*fake.png as an image"):
        containers.read_image(tmp_path / "fake.png")


def test_writer_makes_h264_aac_mp4_with_the_audio_and_odd_sizes(tmp_path):
    speech = write_media(tmp_path / "speech.wav", np.stack([tone(300, 1.0, 44100)] * 2), 44100, "pcm_s16le")
    out = tmp_path / "a b'c;$(touch x)" / "out.mp4"
    with containers.VideoWriter(out, Fraction(30000, 1001), audio_path=speech) as writer:
        for i in range(30):
            writer.write(np.full((33, 47, 3), i * 8, np.uint8))
    assert writer.frames_written == 30
    with av.open(str(out)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert (video.codec_context.name, video.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert (video.width, video.height, video.average_rate) == (48, 34, Fraction(30000, 1001))
        assert (audio.codec_context.name, audio.rate, audio.channels) == ("aac", 44100, 2)
        assert float(audio.duration * audio.time_base) == pytest.approx(1.0, abs=0.05)
    frames = list(containers.read_frames(out))
    assert len(frames) == 30 and np.allclose(levels_of(frames), [i * 8 for i in range(30)], atol=1.5)
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.mp4"]
    assert not (tmp_path / "x").exists()


AAC_FRAME = 1024  # samples per AAC frame


@pytest.mark.parametrize("audio_seconds", [1.0, 0.5])
def test_the_sound_ends_with_the_last_frame(tmp_path, audio_seconds):
    # 20 frames at 25 fps are 0.8 s: longer audio is cut there, shorter audio filled with silence up to it.
    speech = write_media(tmp_path / "speech.wav", tone(300, audio_seconds, 16000), 16000, "pcm_s16le")
    out = tmp_path / "out.mp4"
    with containers.VideoWriter(out, 25, audio_path=speech) as writer:
        for i in range(20):
            writer.write(np.full((32, 32, 3), i * 8, np.uint8))
    ends = containers.stream_ends(out)
    assert ends["video"] == Fraction(20, 25)
    assert abs(ends["audio"] - ends["video"]) <= Fraction(AAC_FRAME, 16000)


def test_the_sound_starts_with_the_first_frame(tmp_path):
    # The AAC encoder's 1024 priming samples are skipped by the mp4's edit list: a tone that
    # starts 0.25 s into the input starts 0.25 s into the output (not 64 ms later at 16 kHz).
    rate, onset = 16000, 0.25
    signal = np.concatenate([np.zeros(int(onset * rate), np.float32), tone(1000, 0.75, rate)])
    speech = write_media(tmp_path / "click.wav", signal, rate, "pcm_s16le")
    out = tmp_path / "out.mp4"
    with containers.VideoWriter(out, 25, audio_path=speech) as writer:
        for _ in range(25):
            writer.write(np.zeros((32, 32, 3), np.uint8))
    with av.open(str(out)) as container:
        decoded = [frame for frame in container.decode(audio=0)]
    assert decoded[0].pts == 0
    sound = np.concatenate([frame.to_ndarray().reshape(-1) for frame in decoded])
    heard = np.flatnonzero(np.abs(sound) > 0.1)[0] / rate
    assert heard == pytest.approx(onset, abs=0.003)


def test_writer_leaves_nothing_behind_on_failure(tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"previous result")
    with pytest.raises(RuntimeError, match="boom"):
        with containers.VideoWriter(out, 25) as writer:
            writer.write(np.zeros((16, 16, 3), np.uint8))
            raise RuntimeError("boom")
    assert out.read_bytes() == b"previous result"
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]
    empty = containers.VideoWriter(tmp_path / "empty.mp4", 25)  # held, so no garbage collection tidies up
    with pytest.raises(UserError, match="no frames to write"):
        with empty:
            pass
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_media_errors_are_clear(tmp_path):
    with pytest.raises(UserError, match="video file not found"):
        containers.probe_video(tmp_path / "nope.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(UserError, match="video file is empty"):
        list(containers.read_frames(tmp_path / "empty.mp4"))
    (tmp_path / "junk.mp4").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(UserError, match="cannot read .*junk.mp4 as media"):
        containers.probe_video(tmp_path / "junk.mp4")
    speech = write_media(tmp_path / "speech.m4a", tone(200, 0.5, 16000), 16000, "aac")
    with pytest.raises(UserError, match="has no video stream"):
        containers.probe_video(speech)
    silent = write_levels(tmp_path / "silent.mp4", [10, 20])
    with pytest.raises(UserError, match="has no audio stream"):
        with containers.VideoWriter(tmp_path / "out.mp4", 25, audio_path=silent):
            pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.mp4", "junk.mp4", "silent.mp4", "speech.m4a"]


def test_a_jpeg_that_does_not_fit_on_the_disk_names_its_path():
    """A failed write() carries no file name; the error must still say which file (/dev/full
    is a device on which every write fails with ENOSPC)."""
    import errno

    from system.errors import describe_os_error

    with pytest.raises(OSError) as caught:
        containers.write_jpeg("/dev/full", np.zeros((8, 8, 3), np.uint8))
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == "/dev/full"
    assert describe_os_error(caught.value) == "no space left on the device of /dev/full"
