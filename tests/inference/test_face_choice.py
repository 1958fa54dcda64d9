"""Several faces in the picture: face tracks, --pick_face and several --box."""

import cv2
import numpy as np
import pytest
from inference_assets import CONSTANT_BGR, assets, cli, decoded, detector, synced  # noqa: F401 - pytest fixtures

from lipsync.box_planning import FACE, NO_FACE, NOT_RUN
from lipsync.face_tracks import link_tracks, parse_pick, pick_box, pick_track, track_detections
from lipsync.stream import LipSyncStream
from media.synthetic import speech_like, write_video
from system.errors import UserError

SMALL, LARGE = (30, 80, 20, 60), (20, 90, 140, 200)  # the two faces' boxes, top bottom left right


def two_faces(count, small=True, large=True, seed=0):
    """Frames of two bright textured faces (every channel above 200) on a darker background:
    a small one on the left and a large one on the right, each drifting by a pixel a frame."""
    rng = np.random.default_rng(seed)
    background = cv2.GaussianBlur(rng.integers(0, 170, (128, 240, 3), dtype=np.uint8), (0, 0), 2)
    frames = []
    for i in range(count):
        frame = background.copy()
        for present, (top, bottom, left, right) in ((small, SMALL), (large, LARGE)):
            if present if isinstance(present, bool) else i in present:
                top, bottom = top + i % 3, bottom + i % 3
                frame[top:bottom, left:right] = rng.integers(215, 256, (bottom - top, right - left, 3), np.uint8)
        frames.append(frame)
    return frames


def painted(frame, box):
    """Whether the constant generator's colour shows inside ``box`` (top bottom left right)."""
    top, bottom, left, right = box
    return bool((frame[top:bottom, left:right] == CONSTANT_BGR).all(axis=2).any())


# -- tracks


def boxes(*rows):
    return np.array(rows, np.float64).reshape(-1, 4)


def test_tracks_follow_overlapping_boxes_and_break_at_a_jump_or_a_long_absence():
    left, right = (0, 0, 40, 40), (100, 0, 160, 60)
    detections = [boxes(left, right), boxes((2, 1, 42, 41), right), None, boxes((4, 2, 44, 42)),  # right unseen
                  boxes((4, 2, 44, 42)), boxes((4, 2, 44, 42), (60, 0, 100, 40)),  # a face jumps in
                  boxes((4, 2, 44, 42)), boxes((4, 2, 44, 42), (100, 0, 160, 60))]  # right back after 5 frames
    tracks = link_tracks(detections, max_missed=4)
    assert [(t.number, t.frames) for t in tracks] == [(1, [0, 1, 3, 4, 5, 6, 7]), (2, [0, 1]), (3, [5]), (4, [7])]
    assert [t.number for t in link_tracks(detections, max_missed=6)] == [1, 2, 3]  # right's one track


def test_each_box_joins_the_track_it_overlaps_most_and_each_track_takes_one_box_a_frame():
    detections = [boxes((0, 0, 40, 40)), boxes((8, 0, 48, 40), (1, 0, 41, 40))]
    tracks = link_tracks(detections, max_missed=1)
    assert [t.boxes for t in tracks] == [[(0, 0, 40, 40), (1, 0, 41, 40)], [(8, 0, 48, 40)]]


def test_largest_is_the_face_that_takes_up_most_of_the_video():
    big_briefly = [boxes((0, 0, 100, 100))] + [boxes((200, 0, 240, 40))] * 9
    tracks = link_tracks([boxes((0, 0, 100, 100), (200, 0, 240, 40))] + big_briefly[1:], max_missed=2)
    assert pick_track(tracks, "largest", "v").number == 2  # 10 x 1600 px beats 1 x 10000 px
    assert pick_track(link_tracks(big_briefly, 2), "largest", "v").number == 2


def test_a_point_picks_the_face_holding_it_first_and_the_smaller_of_two():
    detections = [boxes((0, 0, 50, 50)), boxes((0, 0, 50, 50), (100, 0, 150, 50)),
                  boxes((0, 0, 50, 50), (100, 0, 150, 50), (110, 10, 130, 30))]
    tracks = link_tracks(detections, max_missed=1)
    assert pick_track(tracks, (120, 20), "v").number == 2  # frame 1, before the inner box appears
    tracks = link_tracks([boxes((0, 0, 80, 80), (20, 20, 40, 40))], max_missed=1)
    assert pick_track(tracks, (30, 30), "v").number == 2  # the same frame: the smaller box
    with pytest.raises(UserError, match=r"^--pick_face 300,5: no face found in the video v holds that pixel "
                                        r"\(2 found: face 1 \(frames 0-0, first box 0 80 0 80 top bottom left right\);"):
        pick_track(tracks, (300, 5), "the video v")
    with pytest.raises(UserError, match="^no face detected in any frame of the video v$"):
        pick_track([], "largest", "the video v")


def test_the_chosen_track_reaches_the_planner_as_detections():
    tracks = link_tracks([boxes((0, 0, 10, 10)), None, boxes((1, 0, 11, 10)), boxes()], max_missed=3)
    got_boxes, status = track_detections(tracks[0], ran=[0, 2, 3], count=5)
    assert status == [FACE, NOT_RUN, FACE, NO_FACE, NOT_RUN]
    assert got_boxes[2] == (1, 0, 11, 10)


def test_pick_face_values():
    assert parse_pick("best") == "best" and parse_pick("largest") == "largest" and parse_pick(" 12, 7") == (12, 7)
    for bad in ("auto2", "1,2,3", "-1,5", "1.5,2", ""):
        with pytest.raises(UserError, match="^--pick_face takes best, largest or X,Y"):
            parse_pick(bad)
    assert pick_box([SMALL, LARGE], "largest") == LARGE
    assert pick_box([SMALL, LARGE], (25, 40)) == SMALL
    with pytest.raises(UserError, match="^2 --box given: --pick_face largest or X,Y says which face"):
        pick_box([SMALL, LARGE], "best")
    with pytest.raises(UserError, match=r"^--pick_face 100,5: none of the 2 --box holds that pixel$"):
        pick_box([SMALL, LARGE], (100, 5))


# -- inference


@pytest.fixture(scope="module")
def scene(assets):
    path = assets / "two_faces.mp4"
    write_video(path, two_faces(15))
    return path


def test_the_default_still_lip_syncs_the_detector_s_best_box(assets, scene, detector):
    got, _ = synced(assets, face=scene)
    assert all(painted(frame, (0, 128, 0, 240)) for frame in got) and detector.calls


@pytest.mark.parametrize("pick, chosen, other", [("largest", LARGE, SMALL), ("40,50", SMALL, LARGE)])
def test_pick_face_lip_syncs_the_chosen_face_and_leaves_the_other_untouched(assets, scene, detector, pick, chosen,
                                                                           other):
    frames = decoded(scene)
    got, summary = synced(assets, face=scene, pick_face=pick)
    top, bottom, left, right = other
    for frame, before in zip(got, frames):
        assert painted(frame, chosen)
        assert np.array_equal(frame[:, left - 5:right + 5], before[:, left - 5:right + 5])  # the other face, as it was
    assert summary.faces_detected == len(got)


def test_a_stream_lip_syncs_the_face_picked_too(assets, scene, detector):
    frames = decoded(scene)
    with LipSyncStream(assets / "constant.pth", scene, progress=False, pick_face="40,50") as stream:
        stream.push_audio(speech_like(0.6), 16000)
        stream.close()
        got = [frame for frame in stream if frame.speaking]
    top, bottom, left, right = LARGE
    assert got and all(painted(frame.image, SMALL) for frame in got)
    assert all(np.array_equal(frame.image[:, left:right], frames[frame.index % len(frames)][:, left:right])
               for frame in got)


def test_frames_without_the_chosen_face_pass_through(assets, detector, tmp_path):
    video = write_video(tmp_path / "leaves.mp4", two_faces(15, small=set(range(5))))
    frames = decoded(video)
    got, summary = synced(assets, face=video, pick_face="40,50", on_no_face="error")
    assert len(got) == 12 and [painted(frame, SMALL) for frame in got] == [True] * 5 + [False] * 7
    assert all(np.array_equal(got[i], frames[i]) for i in range(5, 12))
    assert (summary.faces_detected, summary.passed_through) == (5, 7)


def test_several_box_flags_choose_without_detection(assets, scene, detector, capsys, tmp_path):
    common = ["--checkpoint_path", assets / "constant.pth", "--face", scene, "--audio", assets / "speech0.6.wav",
              "--box", *SMALL, "--box", *LARGE]
    code, captured = cli([*common, "--pick_face", "150,40", "--outfile", tmp_path / "large.mp4"], capsys)
    assert code == 0, captured.err
    assert detector.calls == []  # no detection: the boxes are given
    got, before = decoded(tmp_path / "large.mp4"), decoded(scene)  # H.264 both: compare regions' means
    top, bottom, left, right = SMALL
    assert np.abs(got[0][top:bottom, left:right].astype(int) - before[0][top:bottom, left:right]).mean() < 12  # crf 18 noise
    top, bottom, left, right = LARGE
    assert np.abs(got[0][top:bottom, left:right].astype(int) - before[0][top:bottom, left:right]).mean() > 60  # painted


def test_box_given_again_adds_a_face_and_the_reference_s_no_box_drops_those_before_it():
    import inference
    from lipsync import Options

    def parsed(*boxes):
        flags = [str(v) for box in boxes for v in ("--box", *box)]
        args = inference.build_parser().parse_args(["--checkpoint_path", "g", "--face", "f", "--audio", "a", *flags])
        options = Options.from_args(args)
        return options.box, options.boxes

    none = (-1, -1, -1, -1)
    assert parsed() == (none, ()) and parsed(SMALL) == (SMALL, ())
    assert parsed(SMALL, LARGE) == (none, (SMALL, LARGE))
    assert parsed(SMALL, none) == (none, ()) and parsed(SMALL, none, LARGE) == (LARGE, ())


@pytest.mark.parametrize("flags, said", [
    (["--box", *SMALL, "--box", *LARGE], "error: 2 --box given: --pick_face largest or X,Y says which face to "
                                         "lip-sync (best is the detector's choice)"),
    (["--box", *SMALL, "--box", *LARGE, "--pick_face", "230,120"],
     "error: --pick_face 230,120: none of the 2 --box holds that pixel"),
    (["--box", *SMALL, "--box", 0, 500, 0, 10, "--pick_face", "largest"],
     "error: --box 0 500 0 10 does not fit in the 240x128 frame (top bottom left right, 0 <= top < bottom <= height, "
     "0 <= left < right <= width)"),
    (["--pick_face", "middle"], "error: --pick_face takes best, largest or X,Y (a pixel of the face, as --box counts "
                                "them), not 'middle'"),
    (["--pick_face", "largest", "--face_cache", "cache"],
     "error: --face_cache keeps the best face of each frame: it does not go with --pick_face largest"),
])
def test_bad_choices_are_one_line_before_any_work(assets, scene, detector, capsys, tmp_path, flags, said):
    code, captured = cli(["--checkpoint_path", assets / "constant.pth", "--face", scene, "--audio",
                          assets / "speech0.6.wav", "--outfile", tmp_path / "x.mp4", *flags], capsys)
    assert (code, captured.err.strip()) == (1, said)
    assert detector.calls == [] and not (tmp_path / "x.mp4").exists()


def test_a_point_no_face_holds_names_the_faces_found(assets, scene, detector, capsys, tmp_path):
    code, captured = cli(["--checkpoint_path", assets / "constant.pth", "--face", scene, "--audio",
                          assets / "speech0.6.wav", "--outfile", tmp_path / "x.mp4", "--pick_face", "100,120"], capsys)
    assert code == 1 and captured.err.startswith(f"error: --pick_face 100,120: no face found in the video {scene} "
                                                 "holds that pixel (2 found: face 1 (frames 0-11, first box 20 90 140 "
                                                 "200 top bottom left right); face 2 (frames 0-11, first box 30 80 20 "
                                                 "60 top bottom left right))")
    assert not (tmp_path / "x.mp4").exists()
