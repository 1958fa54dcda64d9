"""Bad values, one line each, before the work: numeric flags out of range (NaN and infinities
included), pads that empty the face box, absurd detections, a damaged face-cache entry."""

import cv2
import numpy as np
import pytest
from support.bright_box_detector import BrightBoxDetector
from support.synthetic_weights import save_released, seeded

import dub
import export
import face_detection.loading
import inference
from evaluation import fid, gen_videos_from_filelist, real_videos_inference
from evaluation.scores_LSE import calculate_scores_LRS, calculate_scores_real_videos
from lipsync import Options, lip_sync
from lipsync.box_planning import NoFaceError
from media.synthetic import face_frames, speech_like, write_media, write_video
from models import Wav2Lip
from system.cli import run
from system.errors import UserError


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad_values")
    save_released(seeded(Wav2Lip(), 0), d / "gen.pth")
    write_video(d / "face.mp4", face_frames(12))
    cv2.imwrite(str(d / "face.png"), face_frames(1)[0])
    write_media(d / "speech.wav", speech_like(0.32)[None], 16000, audio_codec="pcm_s16le")
    return d


def one_line(capsys, script, argv):
    """The status and the one stderr line of a script run as its command line runs it."""
    code = run(script.main, [*map(str, argv)])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return code, lines[0]


@pytest.mark.parametrize("flags, message", [
    (["--fps", "nan"], "--fps must be a finite number from 1 to 1000, not nan"),
    (["--fps", "inf"], "--fps must be a finite number from 1 to 1000, not inf"),
    (["--fps", "1e-9"], "--fps must be a finite number from 1 to 1000, not 1e-09"),
    (["--fps", "0"], "--fps must be a finite number from 1 to 1000, not 0"),
    (["--crf", "-5"], "--crf must be a whole number from 0 to 51, not -5"),
    (["--crf", "52"], "--crf must be a whole number from 0 to 51, not 52"),
    (["--max_gap", "nan"], "--max_gap must be a finite number from 0 to 60, not nan"),
    (["--max_gap", "inf"], "--max_gap must be a finite number from 0 to 60, not inf"),
    (["--max_gap", "-1"], "--max_gap must be a finite number from 0 to 60, not -1"),
    (["--pads", "0", str(10 ** 21), "0", "0"],
     f"--pads must be whole numbers from -65536 to 65536, not 0 {10 ** 21} 0 0"),
    (["--box", "-1", "5", "5", "5"], "--box -1 5 5 5: give four pixel positions, 0 or more (top bottom left right)"),
    (["--face_det_batch_size", "0"], "--face_det_batch_size must be a whole number, 1 or more, not 0"),
    (["--wav2lip_batch_size", "-3"], "--wav2lip_batch_size must be a whole number, 1 or more, not -3"),
    (["--det_max_side", "8"], "--det_max_side must be a whole number, 32 or more, not 8"),
    (["--det_stride", "0"], "--det_stride must be a whole number, 1 or more, not 0"),
    (["--resize_factor", "0"], "--resize_factor must be a whole number, 1 or more, not 0"),
    (["--label", "AI", "--label_size", "nan"], "--label_size nan: give the text height as a fraction"),
])
def test_inference_refuses_a_bad_number_in_one_line_before_reading_anything(inputs, tmp_path, capsys, flags, message):
    # The checkpoint does not exist: the number must be refused before anything is read.
    argv = ["--checkpoint_path", tmp_path / "absent.pth", "--face", inputs / "face.png", "--audio",
            inputs / "speech.wav", "--outfile", tmp_path / "out.mp4", "--quiet", *flags]
    code, line = one_line(capsys, inference, argv)
    assert code == 1 and line.startswith(f"error: {message}"), line
    assert list(tmp_path.iterdir()) == []


def test_dub_refuses_a_bad_number_before_any_speech_is_made(inputs, tmp_path, capsys):
    argv = ["--checkpoint_path", tmp_path / "absent.pth", "--face", inputs / "face.png", "--text", "hello",
            "--outfile", tmp_path / "out.mp4", "--fps", "inf", "--quiet"]
    assert one_line(capsys, dub, argv) == (1, "error: --fps must be a finite number from 1 to 1000, not inf")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("script, flags, message", [
    (gen_videos_from_filelist, ["--max_gap", "nan"], "--max_gap must be a finite number from 0 to 60, not nan"),
    (gen_videos_from_filelist, ["--wav2lip_batch_size", "0"],
     "--wav2lip_batch_size must be a whole number, 1 or more, not 0"),
    (real_videos_inference, ["--max_frame_res", "0"], "--max_frame_res must be a whole number, 1 or more, not 0"),
    (real_videos_inference, ["--face_res", "-180"], "--face_res must be a whole number, 1 or more, not -180"),
    (real_videos_inference, ["--min_frame_res", "-1"], "--min_frame_res must be a whole number, 0 or more, not -1"),
    (real_videos_inference, ["--pads", "0", str(10 ** 30), "0", "0"],
     f"--pads must be whole numbers from -65536 to 65536, not 0 {10 ** 30} 0 0"),
])
def test_generation_scripts_refuse_a_bad_number_before_the_first_video(inputs, tmp_path, capsys, script, flags,
                                                                        message):
    (tmp_path / "list.txt").write_text("face speech\n" if script is gen_videos_from_filelist else "face.mp4 face.mp4\n")
    argv = ["--results_dir", tmp_path / "results", "--data_root", inputs, "--checkpoint_path", inputs / "gen.pth",
            "--filelist", tmp_path / "list.txt", "--quiet", *flags]
    if script is real_videos_inference:
        argv += ["--mode", "random"]
    assert one_line(capsys, script, argv) == (1, f"error: {message}")
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("script, flags, message", [
    (calculate_scores_LRS, ["--batch_size", "0"], "--batch_size must be a whole number, 1 or more, not 0"),
    (calculate_scores_LRS, ["--vshift", "-1"], "--vshift must be a whole number from 0 to 1000, not -1"),
    (calculate_scores_real_videos, ["--batch_size", "0"], "--batch_size must be a whole number, 1 or more, not 0"),
    (calculate_scores_real_videos, ["--vshift", "100000"], "--vshift must be a whole number from 0 to 1000, not 100000"),
    (calculate_scores_real_videos, ["--min_track", "-1"], "--min_track must be a whole number, 0 or more, not -1"),
    (calculate_scores_real_videos, ["--min_face_size", "-1"],
     "--min_face_size must be a whole number, 0 or more, not -1"),
])
def test_scoring_scripts_refuse_a_bad_number_before_loading_anything(inputs, tmp_path, capsys, script, flags, message):
    argv = ["--data_root", inputs, "--syncnet_checkpoint_path", tmp_path / "absent.model", "--scores", tmp_path / "s.csv",
            "--quiet", *flags]
    assert one_line(capsys, script, argv) == (1, f"error: {message}")


@pytest.mark.parametrize("flags, message", [
    (["--max_offset", "-1"], "--max_offset must be a whole number from 0 to 1000, not -1"),
    (["--batch_size", "0"], "--batch_size must be a whole number, 1 or more, not 0"),
    (["--min_confidence", "inf"], "--min_confidence must be a finite number, 0 or more, not inf"),
])
def test_sync_audit_refuses_a_bad_number_before_reading_anything(inputs, tmp_path, capsys, flags, message):
    import sync_audit

    argv = ["--data_root", inputs, "--syncnet_checkpoint_path", tmp_path / "absent.pth", "--quiet", *flags]
    assert one_line(capsys, sync_audit, argv) == (1, f"error: {message}")


def test_fid_and_export_refuse_a_bad_number_first(inputs, tmp_path, capsys):
    argv = [inputs / "face.mp4", inputs / "face.mp4", "--inception_checkpoint_path", tmp_path / "absent.pth",
            "--batch_size", "0"]
    assert one_line(capsys, fid, argv) == (1, "error: --batch_size must be a whole number, 1 or more, not 0")
    argv = [inputs / "gen.pth", "--outdir", tmp_path, "--opset", "99"]
    assert one_line(capsys, export, argv) == (1, "error: --opset must be a whole number from 9 to 20, not 99")
    assert list(tmp_path.iterdir()) == []


class FrameList(list):
    def write(self, frame):
        self.append(frame.copy())


def synced(inputs, **options):
    frames = FrameList()
    summary = lip_sync(Options(str(inputs / "gen.pth"), str(inputs / "face.mp4"), str(inputs / "speech.wav"),
                               progress=False, **options), sink=frames)
    return frames, summary


@pytest.fixture
def bright_box_detector(monkeypatch):
    monkeypatch.setattr(face_detection.loading, "S3FDDetector", BrightBoxDetector)


def test_pads_that_empty_the_face_box_say_so(inputs, bright_box_detector):
    """The face is found in every frame: the pads, not the detector, leave nothing to crop."""
    with pytest.raises(UserError) as raised:
        synced(inputs, pads=(-40, -40, 0, 0))
    assert str(raised.value).startswith("--pads -40 -40 0 0 leave an empty box for the face found in frame 0 (at 0.00 s): ")
    assert "no face" not in str(raised.value)


class AbsurdDetector:
    """A detector gone wrong: the same box, however absurd, in every frame."""

    box = None

    def __init__(self, *args, **kwargs):
        pass

    def detect(self, frames, select=None):
        return [np.array([*AbsurdDetector.box, 0.99], np.float32) for _ in frames]


@pytest.mark.parametrize("box, in_frame", [
    ((1e30, 1e30, 1e31, 1e31), False),  # far outside the frame: no face anywhere
    ((np.inf, np.inf, np.inf, np.inf), False),
    ((np.nan, np.nan, np.nan, np.nan), False),
    ((-np.inf, -1e30, 1e30, np.inf), True),  # covers the frame: clipped to it
    ((10, 10, 1e38, 1e38), True),
])
def test_absurd_detections_are_clipped_or_no_face_never_a_crash(inputs, monkeypatch, box, in_frame):
    monkeypatch.setattr(face_detection.loading, "S3FDDetector", AbsurdDetector)
    monkeypatch.setattr(AbsurdDetector, "box", box)
    if not in_frame:
        with pytest.raises(NoFaceError, match="no face detected in any frame"):
            synced(inputs, detector_path=str(inputs / "gen.pth"))
    else:
        frames, summary = synced(inputs, detector_path=str(inputs / "gen.pth"), nosmooth=True)
        assert len(frames) == 5 and summary.faces_detected == 5


@pytest.mark.parametrize("damage", ["truncated", "garbage", "wrong shapes"])
def test_a_damaged_face_cache_entry_is_named_recomputed_and_rewritten(inputs, bright_box_detector, tmp_path, capsys,
                                                                      damage):
    first, summary = synced(inputs, face_cache=str(tmp_path))
    assert summary.cache == "miss (saved)"
    (entry,) = tmp_path.iterdir()
    data = entry.read_bytes()
    if damage == "truncated":
        entry.write_bytes(data[:len(data) // 2])
    elif damage == "garbage":
        entry.write_bytes(b"\0" * len(data))
    else:
        with np.load(entry) as old:
            settings = old["settings"]
        np.savez(entry, boxes=np.zeros((3, 3)), status=np.ones(7, np.int8), settings=settings)
    capsys.readouterr()
    again, summary = synced(inputs, face_cache=str(tmp_path))
    warnings = capsys.readouterr().err.strip().splitlines()
    assert len(warnings) == 1 and warnings[0].startswith(f"warning: ignoring the damaged face cache entry {entry} (")
    assert warnings[0].endswith("): detecting faces again and rewriting it")
    assert summary.cache == "miss (saved)"
    assert len(again) == len(first) and all(np.array_equal(a, b) for a, b in zip(again, first))
    _, summary = synced(inputs, face_cache=str(tmp_path))  # rewritten whole: read back without a word
    assert summary.cache == "hit" and capsys.readouterr().err == ""
