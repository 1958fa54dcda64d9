"""What a run says while it works: a line as each network loads, a bar with its total for face
detection (the face cache's first pass included) beside the lip-sync bar, none of it with
--quiet; notes that would repeat on every run only with --verbose."""

import pytest
import torch
from inference_assets import assets, detector  # noqa: F401 - pytest fixtures
from support.synthetic_weights import save_released, seeded

import inference
from face_detection import S3FD
from lipsync import generator
from system.cli import run


@pytest.fixture(scope="module")
def s3fd_file(tmp_path_factory):
    """Seeded S3FD that finds a face in every frame: its coarsest head says "face" everywhere
    (its box the anchor's), the others "background"."""
    net = seeded(S3FD(), 3)
    with torch.no_grad():
        for name, module in net.named_modules():
            if name.endswith(("mbox_conf", "mbox_loc")):
                module.weight.zero_()
                module.bias.zero_()
                if name.endswith("mbox_conf"):
                    module.bias[:-1] = 10.0
        net.conv7_2_mbox_conf.bias.copy_(torch.tensor([0.0, 1.0]))
    return save_released(net, tmp_path_factory.mktemp("s3fd") / "s3fd.pth", module_prefix=False, wrapped=False)


def lip_sync(assets, tmp_path, capsys, *flags, face="face30.mp4"):
    code = run(inference.main, [str(flag) for flag in [
        "--checkpoint_path", assets / "constant.pth", "--face", assets / face, "--audio", assets / "speech0.6.wav",
        "--outfile", tmp_path / "out.mp4", "--device", "cpu", *flags]])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.err


def last_state(err, bar):
    """The last state tqdm drew of the bar called ``bar``."""
    return [part for part in err.replace("\r", "\n").splitlines() if part.startswith(f"{bar}:")][-1]


def test_loading_and_detection_are_shown_with_their_totals(assets, s3fd_file, tmp_path, capsys):
    err = lip_sync(assets, tmp_path, capsys, "--detector_checkpoint_path", s3fd_file)
    assert f"loading the Wav2Lip generator from {assets / 'constant.pth'}\n" in err
    assert f"loading S3FD from {s3fd_file}\n" in err
    # 0.6 s of speech makes 12 output frames: S3FD runs on those 12 of the video's 30 ...
    assert " 12/12 " in last_state(err, "face detection") and " 12/12 " in last_state(err, "lip-sync")
    # ... and on all 30 when the face cache is empty (its first pass), every 3rd with --det_stride 3
    err = lip_sync(assets, tmp_path, capsys, "--detector_checkpoint_path", s3fd_file, "--face_cache", tmp_path / "c")
    assert " 30/30 " in last_state(err, "face detection")
    err = lip_sync(assets, tmp_path, capsys, "--detector_checkpoint_path", s3fd_file, "--det_stride", 3)
    assert " 4/4 " in last_state(err, "face detection")
    # a still image: one frame
    err = lip_sync(assets, tmp_path, capsys, "--detector_checkpoint_path", s3fd_file, "--static")
    assert " 1/1 " in last_state(err, "face detection")


def test_quiet_leaves_stderr_to_errors(assets, s3fd_file, tmp_path, capsys):
    assert lip_sync(assets, tmp_path, capsys, "--detector_checkpoint_path", s3fd_file, "--quiet") == ""


def test_the_bf16_note_comes_only_with_verbose(assets, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(generator, "native_bf16", lambda: True)
    box = ["--box", 20, 90, 30, 100]
    assert "--precision bf16" not in lip_sync(assets, tmp_path, capsys, *box)
    assert lip_sync(assets, tmp_path, capsys, *box, "--verbose").count("--precision bf16") == 1


def test_the_sync_score_has_its_bar(assets, detector, tmp_path, capsys):
    # The expert scores each window of five faces (seconds each batch on a CPU): 12 output
    # frames make 8 windows, counted in their own bar as they are scored, the last ones
    # before the video is finished; nothing with --quiet.
    scored = ["--box", 20, 90, 30, 100, "--syncnet_checkpoint_path", assets / "sync.pth"]
    err = lip_sync(assets, tmp_path, capsys, *scored)
    assert f"loading the expert SyncNet from {assets / 'sync.pth'}\n" in err
    assert " 8/8 " in last_state(err, "sync score") and " 12/12 " in last_state(err, "lip-sync")
    assert lip_sync(assets, tmp_path, capsys, *scored, "--quiet") == ""
    # frame 5 without a face, skipped: the windows at 0, 6 and 7 alone; the bar ends at their number
    err = lip_sync(assets, tmp_path, capsys, *scored[5:], "--on_no_face", "skip", face="gaps.mp4")
    assert " 3/3 " in last_state(err, "sync score")
