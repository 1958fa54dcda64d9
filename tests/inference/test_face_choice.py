"""Several faces in the picture: face tracks, --pick_face and several --box."""

import cv2
import numpy as np
import pytest
from inference_assets import CONSTANT_BGR, FrameList, assets, cli, decoded, detector, synced  # noqa: F401 - fixtures

from lipsync.box_planning import FACE, NO_FACE, NOT_RUN
from lipsync import Options, lip_sync
from lipsync.audio_chunks import Speech
from lipsync.face_tracks import link_tracks, parse_pick, pick_box, pick_track, track_detections
from lipsync.speakers import choose_speakers, own_audio, quiet_level, track_boxes
from lipsync.stream import LipSyncStream
from lipsync.sync_similarity import SyncSimilarity
from media.synthetic import speech_like, write_video
from system.errors import UserError

SMALL, LARGE = (30, 80, 20, 60), (20, 90, 140, 200)  # the two faces' boxes, top bottom left right


def two_faces(count, small=True, large=True, seed=0, drift=True):
    """Frames of two bright textured faces (every channel above 200) on a darker background:
    a small one on the left and a large one on the right, drifting up and down by a pixel a frame
    (or still)."""
    rng = np.random.default_rng(seed)
    background = cv2.GaussianBlur(rng.integers(0, 170, (128, 240, 3), dtype=np.uint8), (0, 0), 2)
    faces = [rng.integers(215, 256, (bottom - top, right - left, 3), np.uint8) for top, bottom, left, right in
             (SMALL, LARGE)]
    frames = []
    for i in range(count):
        frame = background.copy()
        for present, (top, bottom, left, right), texture in zip((small, large), (SMALL, LARGE), faces):
            if present if isinstance(present, bool) else i in present:
                shift = i % 3 if drift else 0
                frame[top + shift:bottom + shift, left:right] = texture
        frames.append(frame)
    return frames


def painted(frame, box):
    """Whether the constant generator's colour shows inside ``box`` (top bottom left right)."""
    top, bottom, left, right = box
    return bool((frame[top:bottom, left:right] == CONSTANT_BGR).all(axis=2).any())


# -- tracks


def boxes(*rows):
    return np.array(rows, np.float64).reshape(-1, 4)


def test_tracks_follow_overlapping_boxes_take_up_a_face_back_in_its_place_and_break_at_a_jump():
    left, right = (0, 0, 40, 40), (100, 0, 160, 60)
    detections = [boxes(left, right), boxes((2, 1, 42, 41), right), None, boxes((4, 2, 44, 42)),  # right unseen
                  boxes((4, 2, 44, 42)), boxes((4, 2, 44, 42), (60, 0, 100, 40)),  # a face jumps in
                  boxes((4, 2, 44, 42)), boxes((4, 2, 44, 42), (102, 0, 162, 60))]  # right back, 6 frames on
    tracks = link_tracks(detections)
    assert [(t.number, t.frames) for t in tracks] == [(1, [0, 1, 3, 4, 5, 6, 7]), (2, [0, 1, 7]), (3, [5])]


def test_each_box_joins_the_track_it_overlaps_most_and_each_track_takes_one_box_a_frame():
    detections = [boxes((0, 0, 40, 40)), boxes((8, 0, 48, 40), (1, 0, 41, 40))]
    tracks = link_tracks(detections)
    assert [t.boxes for t in tracks] == [[(0, 0, 40, 40), (1, 0, 41, 40)], [(8, 0, 48, 40)]]


def test_largest_is_the_face_that_takes_up_most_of_the_video():
    big_briefly = [boxes((0, 0, 100, 100))] + [boxes((200, 0, 240, 40))] * 9
    tracks = link_tracks([boxes((0, 0, 100, 100), (200, 0, 240, 40))] + big_briefly[1:])
    assert pick_track(tracks, "largest", "v").number == 2  # 10 x 1600 px beats 1 x 10000 px
    assert pick_track(link_tracks(big_briefly), "largest", "v").number == 2


def test_a_point_picks_the_face_holding_it_first_and_the_smaller_of_two():
    detections = [boxes((0, 0, 50, 50)), boxes((0, 0, 50, 50), (100, 0, 150, 50)),
                  boxes((0, 0, 50, 50), (100, 0, 150, 50), (110, 10, 130, 30))]
    tracks = link_tracks(detections)
    assert pick_track(tracks, (120, 20), "v").number == 2  # frame 1, before the inner box appears
    tracks = link_tracks([boxes((0, 0, 80, 80), (20, 20, 40, 40))])
    assert pick_track(tracks, (30, 30), "v").number == 2  # the same frame: the smaller box
    with pytest.raises(UserError, match=r"^--pick_face 300,5: no face found in the video v holds that pixel "
                                        r"\(2 found: face 1 \(frames 0-0, first box 0 80 0 80 top bottom left right\);"):
        pick_track(tracks, (300, 5), "the video v")
    with pytest.raises(UserError, match="^no face detected in any frame of the video v$"):
        pick_track([], "largest", "the video v")


def test_the_chosen_track_reaches_the_planner_as_detections():
    tracks = link_tracks([boxes((0, 0, 10, 10)), None, boxes((1, 0, 11, 10)), boxes()])
    got_boxes, status = track_detections(tracks[0], ran=[0, 2, 3], count=5)
    assert status == [FACE, NOT_RUN, FACE, NO_FACE, NOT_RUN]
    assert got_boxes[2] == (1, 0, 11, 10)


def test_pick_face_values():
    assert parse_pick("best") == "best" and parse_pick("largest") == "largest" and parse_pick(" 12, 7") == (12, 7)
    assert parse_pick("auto") == "auto"
    for bad in ("auto2", "1,2,3", "-1,5", "1.5,2", ""):
        with pytest.raises(UserError, match="^--pick_face takes best, largest, X,Y"):
            parse_pick(bad)
    assert pick_box([SMALL, LARGE], "largest") == LARGE and pick_box([LARGE, SMALL], "best") == SMALL  # the last
    assert pick_box([SMALL, LARGE], (25, 40)) == SMALL
    with pytest.raises(UserError, match=r"^--pick_face 100,5: the --box does not hold that pixel$"):
        pick_box([SMALL], (100, 5))
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
    # the stand-in's best box spans both faces (S3FD's best scoring box): the default pastes over it all
    assert all(painted(frame, (40, 70, 80, 120)) for frame in got) and detector.calls


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


@pytest.mark.parametrize("on_no_face", ["interpolate", "error"])
@pytest.mark.parametrize("present", [range(5), range(7, 12)])
def test_frames_without_the_chosen_face_pass_through(assets, detector, tmp_path, on_no_face, present):
    video = write_video(tmp_path / "comes_and_goes.mp4", two_faces(15, small=set(present)))
    frames = decoded(video)
    got, summary = synced(assets, face=video, pick_face="40,50", on_no_face=on_no_face)
    assert len(got) == 12 and [painted(frame, SMALL) for frame in got] == [i in present for i in range(12)]
    assert all(np.array_equal(got[i], frames[i]) for i in range(12) if i not in present)
    assert (summary.faces_detected, summary.passed_through) == (len(present), 12 - len(present))


def test_a_face_back_after_a_cut_away_is_still_the_face_chosen(assets, detector, tmp_path):
    shown = {*range(3), *range(9, 12)}  # away for 6 frames, longer than --max_gap 0.2 s here
    video = write_video(tmp_path / "cut_away.mp4", two_faces(15, small=shown, large=False))
    got, _ = synced(assets, face=video, pick_face="40,50", max_gap=0.2)
    assert [painted(frame, SMALL) for frame in got] == [i in shown for i in range(12)]


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

    def parsed(*boxes):
        flags = [str(v) for box in boxes for v in ("--box", *box)]
        args = inference.build_parser().parse_args(["--checkpoint_path", "g", "--face", "f", "--audio", "a", *flags])
        options = Options.from_args(args)
        return options.box, options.boxes

    none = (-1, -1, -1, -1)
    assert parsed() == (none, ()) and parsed(SMALL) == (SMALL, ())
    assert parsed(SMALL, LARGE) == (none, (SMALL, LARGE))
    assert parsed(SMALL, none) == (none, ()) and parsed(SMALL, none, LARGE) == (LARGE, ())
    options = Options("g", "f", "a", boxes=(SMALL, LARGE))
    assert options.fixed_box == LARGE  # the reference's last --box, unless --pick_face chooses


@pytest.mark.parametrize("flags, said", [
    (["--box", *SMALL, "--box", *LARGE, "--pick_face", "230,120"],
     "error: --pick_face 230,120: none of the 2 --box holds that pixel"),
    (["--box", *LARGE, "--pick_face", "40,50"], "error: --pick_face 40,50: the --box does not hold that pixel"),
    (["--pick_face", "240,50"], "error: --pick_face 240,50 lies outside the 240x128 frame (X,Y: a pixel of the face, "
                                "as --box counts them)"),
    (["--crop", 0, 100, 0, -1, "--pick_face", "40,110"],
     "error: --pick_face 40,110 lies outside the 240x100 frame after --crop 0 100 0 -1 (X,Y: a pixel of the face, as "
     "--box counts them)"),
    (["--box", *SMALL, "--box", 0, 500, 0, 10, "--pick_face", "largest"],
     "error: --box 0 500 0 10 does not fit in the 240x128 frame (top bottom left right, 0 <= top < bottom <= height, "
     "0 <= left < right <= width)"),
    (["--pick_face", "middle"], "error: --pick_face takes best, largest, X,Y (a pixel of the face, as --box counts "
                                "them) or auto, not 'middle'"),
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


# -- auto: whoever speaks


def test_auto_follows_the_face_that_scores_higher_and_does_not_flicker():
    rng = np.random.default_rng(0)
    truth = np.array([1] * 50 + [2] * 50 + [0] * 10)  # face 1 speaks, then face 2, then nobody
    scores = {1: np.where(truth == 1, 0.8, 0.4) + rng.normal(0, 0.05, 110),
              2: np.where(truth == 2, 0.8, 0.4) + rng.normal(0, 0.05, 110)}
    scores[2][:10] = np.nan  # face 2 comes in at frame 10
    chosen = choose_speakers(scores, quiet=truth == 0, fps=25)
    got = np.array([0 if c is None else c for c in chosen])
    assert np.array_equal(got[:48], truth[:48]) and np.array_equal(got[53:], truth[53:])  # a switch within 3 frames
    # equal scores, noisy: the hysteresis keeps the first choice
    level = {1: 0.6 + rng.normal(0, 0.02, 100), 2: 0.6 + rng.normal(0, 0.02, 100)}
    assert len(set(choose_speakers(level, np.zeros(100, bool), fps=25))) == 1


def test_a_track_s_crop_boxes_are_padded_and_filled_between_its_detections():
    track = link_tracks([boxes((10, 10, 30, 30)), None, boxes((14, 10, 34, 30))])[0]
    got = track_boxes(track, 5, frame_size=(40, 40), pads=(0, 10, 0, 0))
    assert got == [(10, 40, 10, 30), (10, 40, 12, 32), (10, 40, 14, 34), None, None]


def test_the_video_s_own_audio_is_cut_as_inference_cuts_speech(tmp_path):
    speech = speech_like(1.0)
    video = write_video(tmp_path / "v.mp4", two_faces(25), audio=np.concatenate([speech[:8000], np.zeros(8000)]))
    mels, quiet = own_audio(video, 25, 25)
    expected = Speech(video)
    assert all(np.array_equal(mel, chunk) for mel, chunk in zip(mels, expected.chunks(expected.chunk_starts(25))))
    assert not quiet[:8].any() and quiet[15:].all()  # the mel window (8 frames) of silence alone is quiet


def test_quiet_is_within_10_db_of_the_video_s_own_noise_floor():
    room = np.concatenate([np.full(20, -45.0), np.full(80, -20.0)])  # a -45 dBFS room, then speech
    assert quiet_level(room) == -35.0
    assert quiet_level(np.concatenate([np.full(20, -np.inf), np.full(80, -20.0)])) == -50.0  # digital silence
    assert quiet_level(np.full(100, -18.0)) == -30.0  # no pause at all: its quietest windows are speech
    assert quiet_level(np.full(5, -np.inf)) == -50.0


def moving_mouths(window_faces):
    """A stand-in expert: how much the lower halves change over the window (a mouth that moves)."""
    faces = np.asarray(window_faces, np.float64)[:, :, 48:]
    return list(np.abs(np.diff(faces, axis=1)).mean(axis=(1, 2, 3, 4)) / 30)


@pytest.fixture
def conversation(tmp_path):
    """30 frames of two still faces: the small one's mouth moves in frames 0-14, then the large
    one's; speech throughout."""
    frames, rng = two_faces(30, drift=False), np.random.default_rng(1)
    for i, frame in enumerate(frames):
        top, bottom, left, right = SMALL if i < 15 else LARGE
        middle = (top + bottom) // 2
        frame[middle:bottom, left:right] = rng.integers(215, 256, (bottom - middle, right - left, 3), np.uint8)
    return write_video(tmp_path / "talk.mp4", frames, audio=speech_like(1.2))


@pytest.mark.parametrize("given", [(), (SMALL, LARGE)])
def test_auto_lip_syncs_whoever_speaks(assets, detector, conversation, monkeypatch, given):
    monkeypatch.setattr(SyncSimilarity, "cosines", lambda self, mels, windows: moving_mouths(windows))
    got, summary = synced(assets, face=conversation, seconds=1.4, pick_face="auto", boxes=given,
                          syncnet_checkpoint_path=str(assets / "sync.pth"))
    small, large = [painted(frame, SMALL) for frame in got[:30]], [painted(frame, LARGE) for frame in got[:30]]
    assert not any(s and g for s, g in zip(small, large))  # one face at a time
    _, quiet = own_audio(conversation, 25, 30)  # the pauses in the video's own speech: nobody speaks
    assert 3 <= sum(quiet) <= 10
    wanted = [None if quiet[k] else 0 if k < 15 else 1 for k in range(30)]
    shown = [0 if s else 1 if g else None for s, g in zip(small, large)]
    assert all(14 <= k <= 17 for k in range(30) if shown[k] != wanted[k]), (shown, wanted)  # off only at the switch
    if given:
        assert detector.calls == []  # the boxes given: no detection
    else:  # every frame someone speaks in had its face detected; the quiet ones pass through
        assert (summary.faces_detected, summary.passed_through) == (30 - sum(quiet), sum(quiet))


def test_auto_without_an_expert_or_own_audio_says_so_and_takes_the_largest(assets, detector, scene, capsys):
    def run(**options):
        sink = FrameList()
        lip_sync(Options(str(assets / "constant.pth"), str(scene), str(assets / "speech0.6.wav"), pick_face="auto",
                         **options), sink=sink)
        return sink, capsys.readouterr().err

    got, said = run()
    assert "--pick_face auto: it needs the expert (--syncnet_checkpoint_path) to tell who speaks; taking the " \
           "largest face" in said
    assert all(painted(frame, LARGE) and not painted(frame, SMALL) for frame in got)
    _, said = run(syncnet_checkpoint_path=str(assets / "sync.pth"))
    assert f"--pick_face auto: the video {scene} has no audio of its own to tell who speaks; taking the largest " \
           "face" in said
