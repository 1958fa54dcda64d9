"""One vocabulary: every runnable script (benchmarks included) builds its parser with
build_parser(); every flag has help text and --help shows its default; a flag spelled the same
in two scripts means the same thing there; the older spellings still parse, out of sight."""

import argparse
import importlib.util
import re
import sys

import pytest
from conftest import ROOT

OLD_SPELLINGS = {"--detector_path": "--detector_checkpoint_path", "--detector_weights": "--detector_checkpoint_path",
                 "--initial_model": "--syncnet_checkpoint_path", "--weights": "--inception_checkpoint_path",
                 "--filelists": "--filelist_dir"}
# Flags whose meaning is the script's own, as the reference gave them (its own flags stay as they are):
# the network a script runs (--checkpoint_path, --batch_size), its input and output folders and files,
# the reference's per-script defaults (--pads, --on_no_face), and the learning check's own schedule.
PER_SCRIPT = {"--checkpoint_path", "--batch_size", "--data_root", "--outfile", "--results_dir", "--filelist",
              "--pads", "--on_no_face", "--scores", "--report", "--out", "--outdir", "--mode", "--clips", "--speakers",
              "--seconds", "--steps", "--frames", "--repeats", "--workdir", "--tolerance", "--box", "--layout",
              "--devices", "--face", "--audio", "--overwrite", "--seed"}


def scripts():
    """Every file the project runs as a script: its own folders, not tests."""
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if parts[0] == "tests" or any(part.startswith(".") for part in parts):
            continue
        if re.search(r'^if __name__ == "__main__":', path.read_text(), re.M):
            found.append(path)
    return found


def parser_of(path):
    name = "script_" + "_".join(path.relative_to(ROOT).with_suffix("").parts)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    path_before = list(sys.path)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = path_before
    assert hasattr(module, "build_parser"), f"{path.relative_to(ROOT)} has no build_parser()"
    return module.build_parser()


SCRIPTS = scripts()


@pytest.fixture(scope="module")
def parsers():
    return {str(path.relative_to(ROOT)): parser_of(path) for path in SCRIPTS}


def shown(parser):
    return [a for a in parser._actions if a.help != argparse.SUPPRESS and not isinstance(a, argparse._HelpAction)]


def test_the_walk_finds_every_script():
    names = {str(path.relative_to(ROOT)) for path in SCRIPTS}
    assert {"inference.py", "preprocess.py", "wav2lip_train.py", "evaluation/fid.py",
            "benchmarks/bench_inference.py", "benchmarks/learning_check.py"} <= names


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_flag_has_help_and_its_default_reads_right(path):
    parser = parser_of(path)
    silent = [a.option_strings or a.dest for a in shown(parser) if not (a.help or "").strip()]
    assert silent == [], "flags without help"
    text = parser.format_help()
    for wrong in ("(default: )", "(default: True)", "(default: False)", "(default: None)", "%(default)"):
        assert wrong not in text
    # a value a flag does not need is not offered in the usage (--static [STATIC])
    switches = [a for a in parser._actions if a.nargs == "?" and a.const is True]
    for action in switches:
        assert f"{action.option_strings[0]} [" not in " ".join(parser.format_usage().split())
    # every default worth showing is shown
    for action in shown(parser):
        if action.option_strings and action.nargs != 0 and action.default not in (None, "", False) \
                and not (action.nargs == "?" and action.const is True):
            assert "(default: " in (parser.formatter_class("x")._get_help_string(action) or ""), action.option_strings


def test_old_spellings_parse_to_the_same_setting_and_stay_out_of_help(parsers):
    for name, parser in parsers.items():
        for action in parser._actions:
            visible = [s for s in action.option_strings if s in parser.format_help().split()]
            assert not set(visible) & set(OLD_SPELLINGS), f"{name} shows {visible}"
            for old in set(action.option_strings) & set(OLD_SPELLINGS):
                assert OLD_SPELLINGS[old] in action.option_strings, f"{name}: {old} is not an alias of {OLD_SPELLINGS[old]}"


def test_a_flag_means_the_same_in_every_script(parsers):
    """Same spelling, same type, choices, number of values and default, wherever it appears."""
    seen = {}
    for name, parser in parsers.items():
        for action in shown(parser):
            for spelling in action.option_strings:
                if spelling in PER_SCRIPT or spelling in OLD_SPELLINGS:
                    continue
                meaning = (action.type, tuple(action.choices or ()), action.nargs, repr(action.default), action.dest)
                seen.setdefault(spelling, {}).setdefault(meaning, []).append(name)
    differing = {flag: meanings for flag, meanings in seen.items() if len(meanings) > 1}
    assert differing == {}


def test_the_s3fd_batch_and_weights_have_one_name(parsers):
    for name, parser in parsers.items():
        spellings = {s for a in parser._actions for s in a.option_strings}
        if "--detector_checkpoint_path" in spellings or "--detector_path" in spellings:
            assert "--detector_checkpoint_path" in spellings, name
        dests = {a.dest for a in parser._actions}
        if "detector_path" in dests and "--box" in spellings and name != "evaluation/scores_LSE/calculate_scores_real_videos.py":
            assert "--face_det_batch_size" in spellings, f"{name} detects faces but has no --face_det_batch_size"
    preprocess = parsers["preprocess.py"]
    assert preprocess.parse_args(["--data_root", "a", "--preprocessed_root", "b", "--batch_size", "7"]).face_det_batch_size == 7
    assert preprocess.parse_args(["--data_root", "a", "--preprocessed_root", "b",
                                  "--detector_weights", "w.pth"]).detector_path == "w.pth"
