"""Test-set generation: gen_videos_from_filelist.py and real_videos_inference.py."""

import os

import av
import numpy as np
import pytest
from support.bright_box_detector import BrightBoxDetector
from support.synthetic_weights import save_released, seeded

import audio
import face_detection.loading
import merge_shards
from evaluation import gen_videos_from_filelist, real_videos_inference
from evaluation.generation import _downscale_factor
from lipsync.audio_chunks import mel_chunk_starts
from lipsync.frames import stretched_indices
from media import containers
from media.synthetic import face_frames, speech_like, write_media, write_video
from models import Wav2Lip
from system.errors import UserError
from system.reports import read_rows


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.setattr(face_detection.loading, "S3FDDetector", BrightBoxDetector)
    (tmp_path / "weights.pth").write_bytes(b"stand-in S3FD")  # a detector file of its own: no cached detector
    save_released(seeded(Wav2Lip(), 0), tmp_path / "gen.pth")
    root = tmp_path / "data root"
    for name, frames, seconds in [("spk1/00001", 30, 1.0), ("spk2/00002", 12, 0.6)]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        write_video(root / f"{name}.mp4", face_frames(frames, seed=len(name)), audio=speech_like(seconds, seed=frames))
    return tmp_path


def frame_count(path):
    return sum(1 for _ in containers.read_frames(path))


def chunks(path):
    """Output frames for the audio of ``path``: one per mel chunk."""
    return len(mel_chunk_starts(1 + len(audio.load_wav(path, 16000)) // 200, 25.0))


def test_filelist_pairs_are_generated_skipped_and_resumed(data, capsys):
    filelist = data / "lrs2.txt"
    # audio source first, then the face video, as the reference reads these lists
    filelist.write_text("spk2/00002 spk1/00001\nspk1/00001 spk2/00002\n\nspk1/00001 spk3/missing\n")
    argv = ["--filelist", str(filelist), "--results_dir", str(data / "results"), "--data_root", str(data / "data root"),
            "--checkpoint_path", str(data / "gen.pth"), "--detector_checkpoint_path", str(data / "weights.pth"), "--quiet"]
    assert gen_videos_from_filelist.main(argv) == 1  # pairs failed: the others are made, and the run says so
    out, err = capsys.readouterr()
    assert "1 generated, 0 already there, 2 failed (see failures.csv)" in out
    root = data / "data root"
    lines = err.splitlines()  # one line for each pair that failed, with its failures.csv error
    assert len(lines) == 2 and lines[0].startswith("1: 00002.mp4 + 00001.mp4: ") and "12 frames" in lines[0]
    assert lines[1].startswith("2: missing.mp4 + 00001.mp4: ") and lines[1].endswith(str(root / "spk3" / "missing.mp4"))
    results = data / "results"
    assert sorted(p.name for p in results.iterdir()) == ["0.mp4", "failures.csv"]
    assert frame_count(results / "0.mp4") == chunks(data / "data root" / "spk2" / "00002.mp4") < 30
    with av.open(str(results / "0.mp4")) as container:  # marked as synthetic, naming the script
        assert container.metadata["digital_source_type"].endswith("/compositeWithTrainedAlgorithmicMedia")
        assert "gen_videos_from_filelist.py" in container.metadata["software"]
    failures = {row["index"]: row["error"] for row in read_rows(results / "failures.csv")}
    assert f"12 frames but the audio needs {chunks(data / 'data root' / 'spk1' / '00001.mp4')}" in failures["1"]
    assert "not found" in failures["2"]

    made = os.stat(results / "0.mp4").st_mtime_ns
    assert gen_videos_from_filelist.main(argv) == 1
    assert "0 generated, 1 already there, 2 failed" in capsys.readouterr().out
    assert os.stat(results / "0.mp4").st_mtime_ns == made

    filelist.write_text("spk2/00002 spk1/00001\n")  # the failing pairs dealt with
    assert gen_videos_from_filelist.main(argv) == 0
    assert not (results / "failures.csv").exists()


def test_two_shards_generate_what_one_run_generates(data, capsys):
    """Pairs 0 and 2 for shard 0, pair 1 for shard 1: the same videos, frame for frame, and
    their failure lists merged into one run's failures.csv, byte for byte."""
    filelist = data / "lrs2.txt"
    filelist.write_text("spk2/00002 spk1/00001\nspk1/00001 spk2/00002\nspk1/00001 spk3/missing\n")
    argv = lambda results: ["--filelist", str(filelist), "--results_dir", str(data / results),  # noqa: E731
                            "--data_root", str(data / "data root"), "--checkpoint_path", str(data / "gen.pth"),
                            "--detector_path", str(data / "weights.pth"), "--quiet"]
    assert gen_videos_from_filelist.main(argv("one")) == 1
    # each shard has a pair that fails, and says so
    assert [gen_videos_from_filelist.main([*argv("two"), "--shard", f"{k}/2"]) for k in range(2)] == [1, 1]
    assert "failures.shard-1-of-2.csv" in capsys.readouterr().out
    assert merge_shards.main([str(data / "two" / "failures.csv")]) == 1  # as one run: pairs failed
    assert sorted(p.name for p in (data / "two").iterdir()) == sorted(p.name for p in (data / "one").iterdir()) \
        == ["0.mp4", "failures.csv"]
    assert (data / "two" / "failures.csv").read_bytes() == (data / "one" / "failures.csv").read_bytes()
    for a, b in zip(containers.read_frames(data / "one" / "0.mp4"), containers.read_frames(data / "two" / "0.mp4"), strict=True):
        assert np.array_equal(a, b)


def test_face_less_frames_fail_the_pair_by_default_and_the_hint_works(data, capsys):
    root = data / "data root"
    (root / "spk3").mkdir()
    write_video(root / "spk3" / "00003.mp4", face_frames(30, seed=5, without_face=range(8, 12)),
                audio=speech_like(1.0, seed=5))
    (data / "one.txt").write_text("spk1/00001 spk3/00003\n")
    argv = ["--filelist", str(data / "one.txt"), "--results_dir", str(data / "out"), "--data_root", str(root),
            "--checkpoint_path", str(data / "gen.pth"), "--detector_path", str(data / "weights.pth"), "--quiet"]
    assert gen_videos_from_filelist.main(argv) == 1  # the reference's behaviour: the pair fails
    error = read_rows(data / "out" / "failures.csv")[0]["error"]
    assert error.startswith("face not detected in frame 8") and "use --on_no_face interpolate or skip" in error
    capsys.readouterr()
    assert gen_videos_from_filelist.main([*argv, "--on_no_face", "interpolate"]) == 0  # what the hint says
    assert frame_count(data / "out" / "0.mp4") == chunks(root / "spk1" / "00001.mp4")
    assert not (data / "out" / "failures.csv").exists()

    # with interpolate, a pair that fails for another reason still fails the run
    (data / "one.txt").write_text("spk1/00001 spk3/00003\nspk1/00001 spk2/00002\n")
    assert gen_videos_from_filelist.main([*argv, "--on_no_face", "interpolate"]) == 1
    out, err = capsys.readouterr()
    assert "0 generated, 1 already there, 1 failed (see failures.csv)" in out
    assert len(err.splitlines()) == 1 and err.startswith("1: 00002.mp4 + 00001.mp4: ")


def test_generation_shows_what_it_loads_and_a_bar_over_the_pairs(data, capsys):
    (data / "list.txt").write_text("spk2/00002 spk1/00001\nspk2/00002 spk1/00001\n")
    argv = ["--filelist", str(data / "list.txt"), "--results_dir", str(data / "out"), "--data_root",
            str(data / "data root"), "--checkpoint_path", str(data / "gen.pth"), "--detector_checkpoint_path",
            str(data / "weights.pth")]
    assert gen_videos_from_filelist.main(argv) == 0
    err = capsys.readouterr().err.split("\n")
    assert err[0] == f"checking the generator {data / 'gen.pth'} and S3FD {data / 'weights.pth'}"
    bar = err[1].split("\r")[-1]
    assert bar.startswith("videos: 100%") and "| 2/2 [" in bar
    assert gen_videos_from_filelist.main([*argv, "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_nothing_to_generate_is_one_line(data):
    (data / "empty.txt").write_text("\n\n")
    argv = ["--filelist", str(data / "empty.txt"), "--results_dir", str(data / "out"), "--data_root",
            str(data / "data root"), "--checkpoint_path", str(data / "gen.pth")]
    with pytest.raises(UserError, match=f"^{data / 'empty.txt'} lists no pairs$"):
        gen_videos_from_filelist.main(argv)
    (data / "no videos").mkdir()
    argv = ["--mode", "dubbed", "--data_root", str(data / "no videos"), "--results_dir", str(data / "out"),
            "--checkpoint_path", str(data / "gen.pth")]
    with pytest.raises(UserError, match="^no videos in .*no videos$"):
        real_videos_inference.main(argv)


def test_a_malformed_filelist_line_is_named(data):
    filelist = data / "bad.txt"
    filelist.write_text("spk1/00001 spk2/00002\nspk1/00001\n")
    argv = ["--filelist", str(filelist), "--results_dir", str(data / "r"), "--data_root", str(data / "data root"),
            "--checkpoint_path", str(data / "gen.pth")]
    with pytest.raises(UserError, match="line 2: expected two paths, found 1"):
        gen_videos_from_filelist.main(argv)


@pytest.mark.parametrize("face, height, width, expected", [
    (52, 120, 150, 3),  # factor 4 would take the short side under min_frame_res (40)
    (30, 120, 150, 1),  # already the right size: no downscaling
    # The reference compares each factor with the undivided face (|200 - 30| = 170), so it goes
    # on while the divided face is any closer than that: through factor 15, giving 14.
    (200, 2000, 2000, 14),
    (40, 1000, 1000, 1),  # 40 // 2 = 20 is no closer to 30 than 40 is
])
def test_downscale_factor_follows_the_reference(face, height, width, expected):
    assert _downscale_factor(face, height, width, face_res=30, min_frame_res=40) == expected


def test_stretched_indices_repeat_frames_evenly():
    assert stretched_indices(4, 10) == [0, 0, 0, 1, 1, 2, 2, 2, 3, 3]
    assert stretched_indices(5, 5) == [0, 1, 2, 3, 4]
    assert sorted(set(np.bincount(stretched_indices(12, 25)))) == [2, 3]


def test_real_videos_are_scaled_to_the_face_and_tts_stretches_short_videos(data, capsys):
    root = data / "real"
    root.mkdir()
    write_video(root / "talk.mp4", face_frames(30, (200, 160), seed=1), audio=speech_like(0.6))
    common = ["--results_dir", str(data / "out"), "--data_root", str(root), "--checkpoint_path", str(data / "gen.pth"),
              "--detector_path", str(data / "weights.pth"), "--face_res", "30", "--min_frame_res", "40",
              "--max_frame_res", "120", "--quiet"]
    assert real_videos_inference.main(["--mode", "dubbed", *common]) == 0
    # 200x160 -> short side 120: 150x120, face ~52 px; factor 3 brings it nearest 30 px -> 50x40
    info = containers.probe_video(data / "out" / "0.mp4")
    assert (info.width, info.height) == (50, 40)
    assert frame_count(data / "out" / "0.mp4") == chunks(root / "talk.mp4") < 30

    write_media(root / "long.wav", speech_like(1.4)[None], 16000, audio_codec="pcm_s16le")
    (data / "tts.txt").write_text("talk.mp4 long.wav\n")
    (data / "random.txt").write_text("talk.mp4 long.wav\n")
    tts = ["--mode", "tts", "--filelist", str(data / "tts.txt"), *common]
    tts[tts.index("--results_dir") + 1] = str(data / "tts")
    assert real_videos_inference.main(tts) == 0
    assert frame_count(data / "tts" / "0.mp4") == chunks(root / "long.wav") > 30  # 30 frames stretched
    random = ["--mode", "random", "--filelist", str(data / "random.txt"), *common]
    random[random.index("--results_dir") + 1] = str(data / "random")
    assert real_videos_inference.main(random) == 1
    assert f"30 frames but the audio needs {chunks(root / 'long.wav')}" in capsys.readouterr().err


@pytest.mark.parametrize("face_size, face_res", [(96, 180), (192, 192)])
def test_real_videos_are_scaled_for_the_generator_s_face_size_by_default(data, monkeypatch, face_size, face_res):
    """The reference's 180 pixels for the 96-pixel generator; a larger one's faces are not scaled below its size."""
    from models.checkpoint import save_checkpoint

    save_checkpoint(data / "gen192.pth", seeded(Wav2Lip(192), 0))
    root = data / "real"
    root.mkdir()
    write_video(root / "talk.mp4", face_frames(20, (200, 160), seed=1), audio=speech_like(0.6))
    asked = []
    scaled = real_videos_inference.face_scaled_sizes
    monkeypatch.setattr(real_videos_inference, "face_scaled_sizes", lambda *a: asked.append(a[3]) or scaled(*a))
    checkpoint = data / ("gen.pth" if face_size == 96 else "gen192.pth")
    assert real_videos_inference.main(["--mode", "dubbed", "--results_dir", str(data / "out"), "--data_root", str(root),
                                       "--checkpoint_path", str(checkpoint), "--detector_path", str(data / "weights.pth"),
                                       "--quiet"]) == 0
    assert asked == [face_res] and frame_count(data / "out" / "0.mp4") == chunks(root / "talk.mp4")


# Runs gen_videos_from_filelist.py in a process of its own, with the stand-in detector.
RUNNER = """
import sys
sys.path[:0] = [{root!r}, {tests!r}]
import face_detection.loading
from support.bright_box_detector import BrightBoxDetector
face_detection.loading.S3FDDetector = BrightBoxDetector
from system import cli
from evaluation import gen_videos_from_filelist
sys.exit(cli.run(gen_videos_from_filelist.main, sys.argv[1:]))
"""


def test_a_generation_killed_mid_video_and_run_again_equals_an_uninterrupted_one(data):
    from conftest import ROOT
    from support.confined import ENV, PYTHON, kill_when, temporaries, tree

    filelist = data / "lrs2.txt"
    filelist.write_text("spk2/00002 spk1/00001\nspk1/00001 spk1/00001\nspk2/00002 spk1/00001\n")

    def command(results):
        return [PYTHON, "-c", RUNNER.format(root=str(ROOT), tests=str(ROOT / "tests")), "--filelist", str(filelist),
                "--results_dir", str(results), "--data_root", str(data / "data root"), "--checkpoint_path",
                str(data / "gen.pth"), "--detector_path", str(data / "weights.pth"), "--quiet", "--device", "cpu"]

    import subprocess
    straight = subprocess.run(command(data / "straight"), capture_output=True, text=True, env=ENV, check=False)
    assert straight.returncode == 0, straight.stderr
    assert sorted(tree(data / "straight")) == ["0.mp4", "1.mp4", "2.mp4"]

    results = data / "killed"
    kill_when(command(results), lambda: any(p.name.startswith(".1.mp4.") for p in temporaries(results)))
    assert (results / "0.mp4").exists() and not (results / "1.mp4").exists() and temporaries(results)
    again = subprocess.run(command(results), capture_output=True, text=True, env=ENV, check=False)
    assert again.returncode == 0, again.stderr
    assert "2 generated, 1 already there, 0 failed" in again.stdout
    assert tree(results) == tree(data / "straight")  # the same files, byte for byte
    assert temporaries(results) == []
