"""--device auto: CUDA, then Apple's MPS, then the CPU, wherever a script chooses a device."""

import re

import pytest
import torch
from conftest import ROOT

import face_detection
from system.devices import pick_device
from system.errors import UserError


@pytest.fixture
def available(monkeypatch):
    """Pretend which accelerators PyTorch sees: available("cuda", "mps")."""
    def pretend(*kinds):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: "cuda" in kinds)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: "mps" in kinds)
    return pretend


def test_auto_prefers_cuda_then_mps_then_the_cpu(available):
    available("cuda", "mps")
    assert pick_device("auto") == torch.device("cuda")
    available("mps")
    assert pick_device("auto") == torch.device("mps")
    available()
    assert pick_device("auto") == torch.device("cpu")
    available("cuda")
    assert pick_device("cuda:1") == torch.device("cuda", 1) and pick_device("cpu") == torch.device("cpu")


def test_under_torchrun_cuda_is_the_processs_own_gpu(available, monkeypatch):
    available("cuda")
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert pick_device("auto") == pick_device("cuda") == torch.device("cuda", 3)
    assert pick_device("cuda:1") == torch.device("cuda", 1) and pick_device("cpu") == torch.device("cpu")


def test_a_device_that_is_not_there_is_one_line(available):
    available()
    for name, expected in (("cuda", "no CUDA GPU"), ("mps", "Metal (MPS) is not available"),
                           ("gpu9", "is not a device")):
        with pytest.raises(UserError, match=re.escape(expected)):
            pick_device(name)


def test_the_face_alignment_entry_point_follows_auto(available, monkeypatch):
    chosen = []
    monkeypatch.setattr(face_detection.api, "S3FDDetector", lambda device, *args: chosen.append(device))
    available("mps")
    face_detection.FaceAlignment(face_detection.LandmarksType._2D)
    available()
    face_detection.FaceAlignment(face_detection.LandmarksType._2D)
    assert chosen == [torch.device("mps"), torch.device("cpu")]


def test_every_script_that_takes_device_resolves_it_through_pick_device():
    """The trainers, inference, preprocessing and the evaluation scripts: --device goes to
    pick_device (or onnxruntime's own choice), and nothing else asks for CUDA by itself."""
    sources = {path.relative_to(ROOT).as_posix(): path.read_text()
               for path in ROOT.rglob("*.py") if not {"tests", ".venv", "benchmarks"} & set(path.relative_to(ROOT).parts)}
    takes_device = [name for name, text in sources.items() if "add_run_flags(" in text or '"--device"' in text]
    # inference.py and dub.py take theirs through lipsync/command_line.py, the trainers through training/command_line.py
    assert {"lipsync/command_line.py", "preprocess.py", "evaluation/fid.py", "training/command_line.py"} <= set(takes_device)
    asks_for_cuda = sorted(name for name, text in sources.items() if "cuda.is_available()" in text)
    # pick_device itself; the trainers under torchrun pick the local rank's GPU (DDP has no MPS backend)
    assert asks_for_cuda == ["system/devices.py", "training/session.py"]
    resolves = [name for name, text in sources.items() if "pick_device(" in text]
    assert {"lipsync/generator.py", "preprocess.py", "training/session.py", "evaluation/fid.py",
            "evaluation/real_videos_inference.py", "evaluation/scores_LSE/calculate_scores_LRS.py",
            "evaluation/scores_LSE/calculate_scores_real_videos.py", "face_detection/api.py"} <= set(resolves)
