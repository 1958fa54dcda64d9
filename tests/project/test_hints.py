"""Hints only name what exists: every command-line change an error message suggests is parsed
by the parser of each script that can show that message."""

import re
import subprocess

import pytest
from conftest import ROOT

import color_syncnet_train
import dub
import hq_wav2lip_train
import inference
import make_filelists
import preprocess
import synthetic_corpus
import wav2lip_train
from evaluation import fid, gen_videos_from_filelist, real_videos_inference
from evaluation.scores_LSE import calculate_scores_real_videos

TRAINERS = [color_syncnet_train, wav2lip_train, hq_wav2lip_train]
DETECTING = [inference, dub, preprocess, gen_videos_from_filelist, real_videos_inference, calculate_scores_real_videos]
REQUIRED = {  # the least each script's parser needs
    inference: ["--checkpoint_path", "g.pth", "--face", "f.mp4", "--audio", "a.wav"],
    dub: ["--checkpoint_path", "g.pth", "--face", "f.mp4", "--text", "Hello"],
    preprocess: ["--data_root", "d", "--preprocessed_root", "p"],
    make_filelists: ["--preprocessed_root", "p"],
    synthetic_corpus: ["--out", "o"],
    color_syncnet_train: ["--data_root", "d", "--checkpoint_dir", "c"],
    wav2lip_train: ["--data_root", "d", "--checkpoint_dir", "c", "--syncnet_checkpoint_path", "e.pth"],
    hq_wav2lip_train: ["--data_root", "d", "--checkpoint_dir", "c", "--syncnet_checkpoint_path", "e.pth"],
    gen_videos_from_filelist: ["--filelist", "l.txt", "--data_root", "d", "--results_dir", "r", "--checkpoint_path", "g.pth"],
    real_videos_inference: ["--mode", "tts", "--data_root", "d", "--results_dir", "r", "--checkpoint_path", "g.pth"],
    calculate_scores_real_videos: ["--data_root", "d"],
    fid: ["real", "generated"],
}

# (file, the hint as the message words it, scripts that can show it, the command-line additions it suggests)
HINTS = [
    ("lipsync/box_planning.py", "use --on_no_face interpolate or skip", [inference, dub, gen_videos_from_filelist,
     real_videos_inference], [["--on_no_face", "interpolate"], ["--on_no_face", "skip"]]),
    ("dubbing/dub.py", "use --original_audio mute", [dub], [["--original_audio", "mute"]]),
    ("training/dataset.py", "pass --filelist_dir DIR", TRAINERS, [["--filelist_dir", "DIR"]]),
    ("training/dataset.py", "pass --overwrite", [make_filelists, synthetic_corpus], [["--overwrite"]]),
    ("training/checkpoints.py", "pass --checkpoint_path (and --disc_checkpoint_path)", [hq_wav2lip_train],
     [["--checkpoint_path", "g.pth", "--disc_checkpoint_path", "d.pth"]]),
    ("training/checkpoints.py", "pass --checkpoint_path", [color_syncnet_train, wav2lip_train], [["--checkpoint_path", "g.pth"]]),
    ("training/checkpoints.py", "pass --resume to continue that run, --start_over", TRAINERS,
     [["--resume"], ["--start_over"]]),
    ("training/checkpoints.py", "pass --start_over", TRAINERS, [["--start_over"]]),
    ("face_detection/detect.py", "or pass its path with --detector_checkpoint_path", DETECTING,
     [["--detector_checkpoint_path", "s.pth"]]),
    ("face_detection/detect.py", "pass --device cpu", DETECTING, [["--device", "cpu"]]),
    ("face_detection/detect.py", "inference.py --resize_factor", [inference, dub], [["--resize_factor", "2"]]),
    ("evaluation/metrics/fid_statistics.py", "\"--inception_checkpoint_path\")", [fid],
     [["--inception_checkpoint_path", "w.pth"]]),
    ("evaluation/real_videos_inference.py", "needs --filelist", [real_videos_inference], [["--filelist", "l.txt"]]),
]


@pytest.mark.parametrize("file, hint, scripts, additions", HINTS, ids=[hint for _, hint, _, _ in HINTS])
def test_each_hint_parses_where_it_can_be_shown(file, hint, scripts, additions):
    assert hint in (ROOT / file).read_text()  # the table follows the code
    for script in scripts:
        for addition in additions:
            try:
                script.build_parser().parse_args([*REQUIRED[script], *addition])
            except SystemExit:
                pytest.fail(f"{script.__name__} does not accept {' '.join(addition)}, which {file} suggests")


def test_every_hint_in_the_code_is_in_the_table():
    listed = subprocess.run(["git", "ls-files", "*.py"], capture_output=True, text=True, cwd=ROOT, check=True)
    found = []
    for name in listed.stdout.split():
        if name.startswith(("tests/", "benchmarks/")):
            continue
        for line in (ROOT / name).read_text().splitlines():
            if "help=" not in line:
                found += [(name, m.group(0)) for m in re.finditer(r"\b(?:use|pass|try)\b[^\"'`]*--[a-z_]+", line)]
    assert found
    for name, hint in found:
        assert any(name == file and hint in text for file, text, _, _ in HINTS), (name, hint)
