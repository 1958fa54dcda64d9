"""Colours convert exactly, by the input's colour description (matrix, range, primaries,
transfer), and the output carries that description: what a player shows does not change."""

import av
import numpy as np
import pytest

from media import containers
from media.synthetic import from_planes, natural_frames, read_planes, write_tagged_video
from media.yuv import Colour, Picture

# name: (pix_fmt, matrix, full range, tags as written: colorspace, range, primaries, transfer)
INPUTS = {
    "bt601": ("yuv420p", "bt601", False, (6, 1, 6, 6)),
    "bt709": ("yuv420p", "bt709", False, (1, 1, 1, 1)),
    "phone-full-range": ("yuvj420p", "bt601", True, (5, 2, 5, 6)),
    "bt709-full-range": ("yuv420p", "bt709", True, (1, 2, 1, 1)),
    "untagged": ("yuv420p", "bt601", False, (2, 0, 2, 2)),  # converted as BT.601, as FFmpeg does
}


def tagged_input(directory, name, count=6):
    pix_fmt, matrix, full_range, tags = INPUTS[name]
    return write_tagged_video(directory / f"{name}.mp4", natural_frames(count), pix_fmt, matrix, full_range, tags)


def plane_errors(got, expected):
    """Per plane: (mean signed error, share of samples within one level) over all frames."""
    stats = []
    for index in range(3):
        difference = np.concatenate([(g[index].astype(int) - e[index]).ravel() for g, e in zip(got, expected)])
        stats.append((difference.mean(), (np.abs(difference) <= 1).mean()))
    return stats


@pytest.mark.parametrize("name", INPUTS)
def test_frames_are_decoded_by_the_colour_description(tmp_path, name):
    path = tagged_input(tmp_path, name)
    _, matrix, full_range, _ = INPUTS[name]
    planes, _ = read_planes(path)
    for frame, (y, u, v) in zip(containers.read_frames(path), planes, strict=True):
        expected = np.clip(np.rint(from_planes(y, u, v, matrix, full_range)), 0, 255)
        assert np.abs(frame.astype(int) - expected).max() <= 1


@pytest.mark.parametrize("name", INPUTS)
def test_decoding_and_encoding_give_the_planes_back_with_their_tags(tmp_path, name):
    path = tagged_input(tmp_path, name)
    info = containers.probe_video(path)
    with containers.VideoWriter(tmp_path / "out.mp4", info.fps, crf=0, colour=info.colour) as writer:
        for frame in containers.read_frames(path):
            writer.write(frame)
    expected, tags = read_planes(path)
    got, out_tags = read_planes(tmp_path / "out.mp4")
    assert out_tags == tags == (INPUTS[name][3] if name != "phone-full-range" else (5, 2, 5, 6))
    for mean, within_one in plane_errors(got, expected):
        assert abs(mean) <= 0.1 and within_one >= 0.999, (mean, within_one)


def test_libswscales_conversion_fails_that_bar(tmp_path):
    """The yardstick can fail: decoding through libswscale's BGR as before misses it."""
    path = tagged_input(tmp_path, "bt601")
    info = containers.probe_video(path)
    with av.open(str(path)) as container, \
            containers.VideoWriter(tmp_path / "out.mp4", info.fps, crf=0, colour=info.colour) as writer:
        for frame in container.decode(video=0):
            writer.write(frame.to_ndarray(format="bgr24"))
    luma_mean, luma_within_one = plane_errors(read_planes(tmp_path / "out.mp4")[0], read_planes(path)[0])[0]
    assert luma_mean < -0.5 and luma_within_one < 0.999


def test_bgr_frames_are_written_as_tagged_bt601():
    colour = Colour()
    assert (colour.matrix, colour.range, colour.primaries, colour.transfer) == (5, 1, 6, 6)


def test_editing_a_picture_changes_only_the_chroma_blocks_of_the_box():
    rng = np.random.default_rng(0)
    colour = Colour(1, 1, 1, 1)
    picture = Picture(*(rng.integers(16, 236, shape, dtype=np.uint8) for shape in ((24, 30), (12, 15), (12, 15))),
                      colour)
    before = picture.copy()
    with picture.editing((3, 9, 5, 11)) as (region, inner):
        assert region.shape == (8, 8, 3) and inner == (1, 7, 1, 7)  # rows 2..9, columns 4..11
        assert np.array_equal(region, before.bgr()[2:10, 4:12])
        region[1:7, 1:7] = (0, 0, 255)
    outside = np.ones((24, 30), bool)
    outside[2:10, 4:12] = False
    assert np.array_equal(picture.y[outside], before.y[outside])
    chroma_outside = outside[::2, ::2]
    for plane, old in ((picture.u, before.u), (picture.v, before.v)):
        assert np.array_equal(plane[chroma_outside], old[chroma_outside])
    # Blocks wholly inside the box take the new colour; blocks it shares keep their old chroma's share.
    assert np.abs(picture.bgr()[4:8, 6:10].astype(int) - (0, 0, 255)).max() <= 1


def test_a_picture_rotates_and_crops_its_planes_exactly():
    rng = np.random.default_rng(1)
    picture = Picture(*(rng.integers(16, 236, shape, dtype=np.uint8) for shape in ((8, 12), (4, 6), (4, 6))), Colour())
    turned = picture.rotated(-1)  # clockwise
    assert np.array_equal(turned.bgr(), np.rot90(picture.bgr(), -1))
    assert np.array_equal(picture.cropped(2, 7, 4, 12).bgr(), picture.bgr()[2:7, 4:12])
    assert picture.cropped(1, 7, 4, 12) is None  # an odd top would split chroma blocks


def test_deeper_and_other_subsampled_inputs_are_decoded_exactly(tmp_path):
    """10-bit and 4:4:4 video: the planes as stored, converted by the same formulas."""
    frames = [frame.astype(np.uint8) for frame in natural_frames(2)]
    for pix_fmt, shift in (("yuv420p10le", 2), ("yuv444p", 0)):
        path = tmp_path / f"{pix_fmt}.mp4"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=25, options={"crf": "0"})
            stream.width, stream.height, stream.pix_fmt = 128, 96, pix_fmt
            for frame in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24").reformat(format=pix_fmt)):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        with av.open(str(path)) as container:
            dtype = np.uint16 if shift else np.uint8
            stored = [[np.frombuffer(p, dtype).reshape(p.height, -1)[:, :p.width] / 2 ** shift for p in f.planes]
                      for f in container.decode(video=0)]
        for frame, (y, u, v) in zip(containers.read_frames(path), stored, strict=True):
            if u.shape == y.shape:  # 4:4:4: each pixel its own chroma; the textbook decoder takes 2x2 blocks
                expected = from_planes(y, u[::2, ::2], v[::2, ::2], "bt601", False)
                assert np.abs(frame[::2, ::2] - np.clip(expected[::2, ::2], 0, 255)).max() <= 1
                continue
            expected = np.clip(from_planes(y, u, v, "bt601", False), 0, 255)
            difference = frame - expected  # 10 bits are rounded to 8 before converting: no bias, small spread
            assert abs(difference.mean()) < 0.05 and np.abs(difference).mean() < 1 and np.abs(difference).max() <= 3
