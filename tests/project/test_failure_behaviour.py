"""What every script does when its output folder is read-only, and the permissions of what they write."""

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT
from support.confined import READ_ONLY, in_namespace, one_line_error
from support.synthetic_weights import seeded

import preprocess
from media.synthetic import face_frames, speech_like, write_video
from models import SyncNet_color
from models.checkpoint import save_checkpoint
from system.reports import write_rows
from training.synthetic_data import FACE_BOX, make_corpus


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    (d / "videos").mkdir()
    write_video(d / "videos" / "0.mp4", face_frames(10), audio=speech_like(0.4))
    (d / "list.txt").write_text("0 0\n")
    make_corpus(d / "corpus", "preprocessed", speakers=4, clips=1, seconds=1.0, seed=1)
    (d / "expert.pth").write_bytes(b"never read: the output folder is refused first")
    return d


# script and its arguments (OUT: the read-only folder, IN: the inputs)
CASES = {
    "make_filelists": ("make_filelists.py", ["--preprocessed_root", "IN/corpus", "--filelists", "OUT/lists"]),
    "synthetic_corpus": ("synthetic_corpus.py", ["--out", "OUT/corpus", "--speakers", "1", "--clips", "1"]),
    "color_syncnet_train": ("color_syncnet_train.py", ["--data_root", "IN/corpus", "--checkpoint_dir", "OUT"]),
    "wav2lip_train": ("wav2lip_train.py", ["--data_root", "IN/corpus", "--checkpoint_dir", "OUT/run",
                                           "--syncnet_checkpoint_path", "IN/expert.pth"]),
    "hq_wav2lip_train": ("hq_wav2lip_train.py", ["--data_root", "IN/corpus", "--checkpoint_dir", "OUT",
                                                 "--syncnet_checkpoint_path", "IN/expert.pth"]),
    "gen_videos_from_filelist": ("evaluation/gen_videos_from_filelist.py",
                                 ["--filelist", "IN/list.txt", "--data_root", "IN/videos", "--results_dir", "OUT",
                                  "--checkpoint_path", "IN/expert.pth"]),
    "real_videos_inference": ("evaluation/real_videos_inference.py",
                              ["--mode", "dubbed", "--data_root", "IN/videos", "--results_dir", "OUT/real",
                               "--checkpoint_path", "IN/expert.pth"]),
    "calculate_scores_LRS": ("evaluation/scores_LSE/calculate_scores_LRS.py",
                             ["--data_root", "IN/videos", "--initial_model", "IN/expert.pth", "--scores", "OUT/s.csv"]),
    "calculate_scores_real_videos": ("evaluation/scores_LSE/calculate_scores_real_videos.py",
                                     ["--data_root", "IN/videos", "--initial_model", "IN/expert.pth",
                                      "--scores", "OUT/s.csv"]),
    "sync_audit": ("sync_audit.py", ["--data_root", "IN/corpus", "--syncnet_checkpoint_path", "IN/expert.pth",
                                     "--report", "OUT/sync_audit.csv"]),
    "fid": ("evaluation/fid.py", ["IN/videos", "OUT/stats.npz", "--save_stats", "--weights", "IN/expert.pth"]),
}


# Runs each script as `python script.py args` would, one after another in one interpreter
# (torch loads once), and prints each one's exit status, stderr and stdout as JSON.
RUN_EACH = """
import contextlib, io, json, os, runpy, sys
results = {}
for name, argv in json.loads(sys.argv[1]).items():
    sys.argv, err, out, code = [argv[0], *argv[1:]], io.StringIO(), io.StringIO(), None
    sys.path.insert(0, os.path.dirname(argv[0]))
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            runpy.run_path(argv[0], run_name="__main__")
        except SystemExit as done:
            code = done.code
    results[name] = (code, err.getvalue(), out.getvalue())
print(json.dumps(results))
"""


def test_a_read_only_output_folder_is_one_line_before_any_work(inputs, tmp_path):
    out = tmp_path / "out"
    runs = {case: [str(ROOT / name), *(arg.replace("OUT", str(out)).replace("IN", str(inputs)) for arg in args)]
            for case, (name, args) in CASES.items()}
    result = in_namespace(READ_ONLY + ' && "$PY" -c "$CODE" "$1"', out, json.dumps(runs), CODE=RUN_EACH)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(result.stdout.strip().splitlines()[-1])
    assert sorted(results) == sorted(CASES)
    for case, (code, stderr, stdout) in results.items():
        assert code not in (None, 0), case
        outcome = subprocess.CompletedProcess([case], code, "", stderr)
        assert one_line_error(outcome) == f"error: {out} is read-only (read-only file system)", case
        assert stdout == "", case  # refused before any data or model was loaded (the trainers say "N training clips")


def test_outputs_are_readable_by_others_as_open_would_make_them(tmp_path):
    previous = os.umask(0o022)
    try:
        raw = tmp_path / "raw"
        make_corpus(raw, "raw", speakers=1, clips=1, seconds=0.8, seed=2)
        assert preprocess.main(["--data_root", str(raw), "--preprocessed_root", str(tmp_path / "pre"), "--quiet",
                                "--box", *map(str, FACE_BOX), "--audio_workers", "1"]) == 0
        save_checkpoint(tmp_path / "ckpt" / "checkpoint_step000000001.pth", seeded(SyncNet_color(), 0))
        write_rows(tmp_path / "scores.csv", [{"video": "0.mp4", "lse_d": 7.0}])
    finally:
        os.umask(previous)
    written = [p for p in tmp_path.rglob("*") if p.is_file() and "raw" not in p.parts]
    assert any(p.name == "audio.wav" for p in written) and any(p.suffix == ".jpg" for p in written)
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in written} == {p.name: "0o644" for p in written}


def test_a_reader_that_goes_away_ends_the_output_quietly():
    """`python inference.py ... | head -1`: the pipe closes under the script, which stops
    without an error line or a traceback about the broken pipe."""
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); from system import cli\n"
            "def main(argv):\n    for _ in range(1000):\n        print('x' * 10000)\n    return 0\n"
            "sys.exit(cli.run(main, []))")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    child.stdout.read(10)
    child.stdout.close()
    assert child.wait(timeout=60) == 1 and child.stderr.read() == b""


def test_an_os_error_without_a_path_is_its_cause_alone():
    import errno

    from system.errors import describe_os_error

    assert describe_os_error(OSError(errno.EIO, "Input/output error")) == "Input/output error"
    assert describe_os_error(OSError(errno.EIO, "Input/output error", "/x")) == "/x: Input/output error"
