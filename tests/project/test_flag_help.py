"""The words of --help: every default written "(default: X)", several values shown as they are
typed, and the benchmarks' batch sizes under inference's names (their first names still parse)."""

import re

import pytest
from conftest import ROOT
from test_benchmarks import benchmark
from test_flags import SCRIPTS, parser_of


def test_every_default_written_by_hand_has_the_colon():
    wrong = {}
    for path in SCRIPTS:
        name = str(path.relative_to(ROOT))
        for action in parser_of(path)._actions:
            if re.search(r"\(default [^:]|[;,] default ", action.help or ""):
                wrong.setdefault(name, []).append(action.option_strings)
    assert wrong == {}


def test_several_values_are_shown_as_typed(monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # no line broken inside a value (box-onnx)

    def help_of(name):
        return " ".join(benchmark(name).build_parser().format_help().split())

    assert "(default: 10 40)" in help_of("bench_inference")
    assert "(default: reference fast box box-fast box-onnx box-onnx-fast)" in help_of("bench_inference")
    assert "(default: mel-1min mel-7h still-small still-24mp video-4k)" in help_of("bench_memory")


def test_the_benchmarks_batch_sizes_take_inference_s_names():
    parser = benchmark("bench_models").build_parser()
    args = parser.parse_args(["--wav2lip_batch_size", "7", "--face_det_batch_size", "3"])
    assert (args.wav2lip_batch_size, args.face_det_batch_size) == (7, 3)
    args = parser.parse_args(["--gen_batch", "5", "--det_batch", "2"])  # the benchmark's first names
    assert (args.wav2lip_batch_size, args.face_det_batch_size) == (5, 2)
    text = parser.format_help()
    assert "--gen_batch" not in text and "--det_batch" not in text
    assert "frames per generator batch (default: 128)" in " ".join(text.split())


def test_det_max_side_says_what_no_value_means():
    from inference import build_parser

    action = next(a for a in build_parser()._actions if "--det_max_side" in a.option_strings)
    assert action.default is None and action.help.endswith("without it, faces are detected on the frames at their full size")


def test_a_flag_is_taken_as_spelled_never_as_the_start_of_a_longer_one(capsys):
    # --filelist, typed to a trainer (whose --filelist_dir has the hidden old spelling --filelists)
    trainer = parser_of(ROOT / "wav2lip_train.py")
    for typed in (["--filelist", "x"], ["--data_roo", "x"]):
        with pytest.raises(SystemExit) as stopped:
            trainer.parse_args(["--data_root", "d", "--checkpoint_dir", "c", "--syncnet_checkpoint_path", "s", *typed])
        assert stopped.value.code == 2
        assert capsys.readouterr().err.splitlines()[-1].endswith(f"unrecognized arguments: {' '.join(typed)}")
    for path in SCRIPTS:
        assert parser_of(path).allow_abbrev is False, path
