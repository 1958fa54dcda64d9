"""export.py and --backend onnxruntime: each network against PyTorch, the pipeline without torch."""

import subprocess
import sys

import numpy as np
import onnxruntime
import pytest
import torch
from conftest import ROOT
from support.synthetic_weights import save_released, seeded

import export
import face_detection
from evaluation.metrics.syncnet import S
from face_detection import S3FD, S3FDDetector
from lipsync import Options, lip_sync
from media import containers
from media.synthetic import face_frames, speech_like, write_media, write_video
from models import SyncNet_color, Wav2Lip, Wav2Lip_disc_qual
from models.checkpoint import load_weights
from system.cli import run
from system.errors import UserError
from system.onnx_runtime import inference_session

BOX = (20, 90, 30, 100)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The four networks with seeded weights (gain 0.8: float32 rounding stays near 1e-6, as in
    trained networks), exported by export.py in one run."""
    d = tmp_path_factory.mktemp("onnx")
    save_released(seeded(Wav2Lip(), 0, gain=0.8), d / "wav2lip.pth")
    save_released(seeded(SyncNet_color(), 1, gain=0.8), d / "lipsync_expert.pth")
    s3fd = seeded(S3FD(), 7, gain=0.8)
    with torch.no_grad():  # a bias towards "face", so that the seeded net finds some
        for name in ("conv4_3_norm_mbox_conf", "conv5_3_norm_mbox_conf", "fc7_mbox_conf"):
            getattr(s3fd, name).bias.copy_(torch.tensor([0.0, 1.5]))
    save_released(s3fd, d / "s3fd.pth", module_prefix=False, wrapped=False)
    save_released(seeded(S(), 2, gain=0.8), d / "syncnet_v2.model", module_prefix=False, wrapped=False)
    assert export.main([str(d / name) for name in ("wav2lip.pth", "lipsync_expert.pth", "s3fd.pth",
                                                   "syncnet_v2.model")]) == 0
    write_media(d / "speech.wav", speech_like(0.6)[None], 16000, audio_codec="pcm_s16le")
    write_video(d / "face.mp4", face_frames(12))
    return d


def loaded(model, path):
    load_weights(model, path)
    return model.eval()


def largest_difference(onnx_path, torch_outputs, **inputs):
    got = inference_session(onnx_path, "cpu").run(None, {name: x.numpy() for name, x in inputs.items()})
    return max(float(np.abs(g - e.numpy()).max()) for g, e in zip(got, torch_outputs, strict=True))


@pytest.mark.parametrize("batch", [1, 5])
def test_each_export_equals_pytorch_at_any_batch(exported, batch):
    """Against the released-layout networks as PyTorch runs them (the generator unfolded)."""
    g = torch.Generator().manual_seed(batch)
    rand = lambda *shape: torch.rand(shape, generator=g)  # noqa: E731
    with torch.no_grad():
        mel, face = rand(batch, 1, 80, 16), rand(batch, 6, 96, 96)
        generated = loaded(Wav2Lip(), exported / "wav2lip.pth")(mel, face)
        assert largest_difference(exported / "wav2lip.onnx", [generated], mel=mel, face=face) <= 1e-4
        faces = rand(batch, 15, 48, 96)
        embeddings = loaded(SyncNet_color(), exported / "lipsync_expert.pth")(mel, faces)
        assert largest_difference(exported / "lipsync_expert.onnx", embeddings, mel=mel, faces=faces) <= 1e-4
        frames = rand(batch, 3, 120, 168) * 255 - 110  # another frame size than the export's
        heads = loaded(S3FD(), exported / "s3fd.pth")(frames)
        assert largest_difference(exported / "s3fd.onnx", heads, frames=frames) <= 1e-4
        net = loaded(S(), exported / "syncnet_v2.model")
        mfcc, video = rand(batch, 1, 13, 20), rand(batch + 1, 3, 5, 224, 224)
        both = net.forward_aud(mfcc), net.forward_lip(video)
        assert largest_difference(exported / "syncnet_v2.onnx", both, mfcc=mfcc, frames=video) <= 1e-4
    session = onnxruntime.InferenceSession(str(exported / "wav2lip.onnx"))
    assert [i.shape[0] for i in session.get_inputs()] == ["batch", "batch"]  # the batch is a named, free dimension


def test_export_refuses_what_it_does_not_know_in_one_line(tmp_path, capsys):
    save_released(seeded(Wav2Lip_disc_qual()), tmp_path / "disc.pth")
    assert run(export.main, [str(tmp_path / "disc.pth")]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "visual-quality discriminator" in error and "ONNX export knows" in error
    assert run(export.main, [str(tmp_path / "missing.pth")]) == 1
    assert "checkpoint not found" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["disc.pth"]  # nothing half-written


def test_export_goes_on_past_a_refused_checkpoint_and_fails_at_the_end(exported, tmp_path, capsys):
    save_released(seeded(Wav2Lip_disc_qual()), tmp_path / "disc.pth")
    (tmp_path / "expert.pth").write_bytes((exported / "lipsync_expert.pth").read_bytes())
    given = [tmp_path / "disc.pth", tmp_path / "missing.pth", tmp_path / "expert.pth"]
    assert run(export.main, [*map(str, given), "--quiet"]) == 1  # (the refused ones say nothing before their error)
    out, err = capsys.readouterr()
    assert out.startswith(f"Wrote {tmp_path / 'expert.onnx'}: the expert lip-sync SyncNet") and out.count("\n") == 1
    lines = err.splitlines()
    assert len(lines) == 3 and "visual-quality discriminator" in lines[0] and "ONNX export knows" in lines[0]
    assert lines[1] == f"error: checkpoint not found: {tmp_path / 'missing.pth'}"
    assert lines[2] == f"error: 2 of 3 checkpoints not exported (see above): {given[0]}, {given[1]}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["disc.pth", "expert.onnx", "expert.pth"]


def test_tolerance_is_the_largest_difference_an_export_may_show(exported, tmp_path, capsys):
    checkpoint = tmp_path / "expert.pth"
    checkpoint.write_bytes((exported / "lipsync_expert.pth").read_bytes())
    assert run(export.main, [str(checkpoint), "--tolerance", "1e-12"]) == 1
    progress, err = capsys.readouterr().err.split("\n", 1)  # a line says what is being exported (~10 s each)
    assert progress == (f"exporting {checkpoint}, the expert lip-sync SyncNet (lipsync_expert.pth), and checking it "
                        "against PyTorch ...")
    assert err.startswith(f"error: the ONNX export of {checkpoint} differs from PyTorch by ")
    assert err.endswith(" (more than --tolerance 1e-12): not written\n") and err.count("\n") == 1
    assert not (tmp_path / "expert.onnx").exists()
    assert run(export.main, [str(checkpoint), "--tolerance", "-1"]) == 1
    assert capsys.readouterr().err == "error: --tolerance must be a finite number, 0 or more, not -1\n"
    assert run(export.main, [str(checkpoint), "--tolerance", "1e-3", "--quiet"]) == 0
    assert (tmp_path / "expert.onnx").is_file() and capsys.readouterr().err == ""
    assert "(default: 0.0001)" in " ".join(export.build_parser().format_help().split())


def frames_of(assets, checkpoint, **options):
    out = assets / f"out_{checkpoint}_{options.get('backend', 'torch')}.mp4"
    lip_sync(Options(str(assets / checkpoint), str(assets / "face.mp4"), str(assets / "speech.wav"), outfile=str(out),
                     crf=0, progress=False, unmarked=True, **options))
    return list(containers.read_frames(out))


def test_onnxruntime_backend_gives_pytorchs_frames(exported):
    by_torch = frames_of(exported, "wav2lip.pth", box=BOX)
    by_onnx = frames_of(exported, "wav2lip.onnx", box=BOX, backend="onnxruntime")
    assert len(by_onnx) == len(by_torch) == 12  # a chunk per 0.2 s window of 0.6 s of audio
    differences = np.concatenate([np.abs(a.astype(int) - b.astype(int)).ravel() for a, b in zip(by_torch, by_onnx)])
    # The same uint8 faces but where float rounding crosses a truncation step: a level there,
    # two at most once the pasted box goes to YUV and back; measured 0.004 % of the values.
    assert differences.max() <= 2 and (differences > 0).mean() < 1e-3


def test_onnxruntime_backend_reads_the_generators_onnx_beside_its_checkpoint(exported, tmp_path, capsys):
    """--checkpoint_path wav2lip.pth with --backend onnxruntime runs the wav2lip.onnx export.py
    wrote beside it, as detection does with s3fd.pth; without it, one line says how to write it."""
    import inference

    by_onnx = frames_of(exported, "wav2lip.onnx", box=BOX, backend="onnxruntime")
    by_pth = frames_of(exported, "wav2lip.pth", box=BOX, backend="onnxruntime")
    assert len(by_pth) == len(by_onnx) == 12 and all(np.array_equal(a, b) for a, b in zip(by_pth, by_onnx))
    (tmp_path / "wav2lip.pth").write_bytes((exported / "wav2lip.pth").read_bytes())
    out = tmp_path / "out.mp4"
    assert run(inference.main, list(map(str, ["--checkpoint_path", tmp_path / "wav2lip.pth", "--face",
                                              exported / "face.mp4", "--audio", exported / "speech.wav", "--box",
                                              *BOX, "--backend", "onnxruntime", "--outfile", out]))) == 1
    assert capsys.readouterr().err == (
        f"error: Wav2Lip as ONNX not found at {tmp_path / 'wav2lip.onnx'} (--backend onnxruntime reads the .onnx "
        f"beside --checkpoint_path): python export.py {tmp_path / 'wav2lip.pth'} writes it\n")
    assert not out.exists()


def test_onnxruntime_backend_detects_faces_with_the_exported_s3fd(exported):
    summaries = []
    for checkpoint, backend in (("wav2lip.pth", "torch"), ("wav2lip.onnx", "onnxruntime")):
        summaries.append(lip_sync(Options(
            str(exported / checkpoint), str(exported / "face.mp4"), str(exported / "speech.wav"), backend=backend,
            outfile=str(exported / f"detected_{backend}.mp4"), progress=False, unmarked=True, on_no_face="skip",
            detector_path=str(exported / ("s3fd.onnx" if backend == "onnxruntime" else "s3fd.pth")))))
    torch_run, onnx_run = summaries
    assert onnx_run.frames == torch_run.frames == 12
    assert (onnx_run.faces_detected, onnx_run.passed_through) == (torch_run.faces_detected, torch_run.passed_through)
    assert onnx_run.faces_detected > 0


def test_onnx_s3fd_finds_pytorchs_boxes(exported):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, size=(3, 80, 112, 3), dtype=np.uint8)
    by_torch = S3FDDetector("cpu", exported / "s3fd.pth").detect(frames)
    by_onnx = S3FDDetector("cpu", exported / "s3fd.onnx").detect(frames)
    assert sum(box is not None for box in by_torch) > 0
    for a, b in zip(by_torch, by_onnx, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            assert np.allclose(a, b, rtol=1e-4, atol=1e-2)


def test_onnxruntime_with_box_never_imports_torch(exported):
    """A torch-free start: `import torch` anywhere would raise, yet the video is written."""
    out = exported / "no_torch.mp4"
    code = ("import runpy, sys; sys.modules['torch'] = None; "
            f"sys.argv = ['inference.py', '--backend', 'onnxruntime', '--checkpoint_path', {str(exported / 'wav2lip.onnx')!r}, "
            f"'--face', {str(exported / 'face.mp4')!r}, '--audio', {str(exported / 'speech.wav')!r}, "
            f"'--outfile', {str(out)!r}, '--box', *{list(map(str, BOX))!r}, '--quiet']; "
            "runpy.run_path('inference.py', run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert len(list(containers.read_frames(out))) == 12


def test_onnxruntime_backend_errors_are_one_line_before_work(exported, capsys, tmp_path):
    import inference

    common = ["--face", exported / "face.mp4", "--audio", exported / "speech.wav", "--outfile", tmp_path / "x.mp4",
              "--backend", "onnxruntime", "--quiet"]
    cases = [(["--checkpoint_path", exported / "wav2lip.onnx", "--box", *BOX, "--precision", "bf16"],
              "--precision bf16 is for --backend torch"),
             (["--checkpoint_path", exported / "gone.onnx", "--box", *BOX], "ONNX model not found")]
    for flags, expected in cases:
        assert run(inference.main, list(map(str, common + flags))) == 1
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and expected in error, error
    assert not (tmp_path / "x.mp4").exists()


def test_onnxruntime_reads_the_s3fd_onnx_beside_the_weights_named(exported, tmp_path, capsys):
    """--detector_checkpoint_path s3fd.pth (here in its old spelling) with --backend onnxruntime
    runs the s3fd.onnx export.py wrote beside it; the .pth itself is not read."""
    import inference

    only_onnx, only_pth = tmp_path / "only_onnx", tmp_path / "only_pth"
    only_onnx.mkdir(), only_pth.mkdir()
    (only_onnx / "s3fd.onnx").write_bytes((exported / "s3fd.onnx").read_bytes())
    (only_pth / "s3fd.pth").write_bytes((exported / "s3fd.pth").read_bytes())
    common = ["--checkpoint_path", exported / "wav2lip.onnx", "--face", exported / "face.mp4", "--audio",
              exported / "speech.wav", "--backend", "onnxruntime", "--on_no_face", "skip", "--quiet"]
    out = tmp_path / "out.mp4"
    assert run(inference.main, list(map(str, [*common, "--outfile", out, "--detector_path", only_onnx / "s3fd.pth"]))) == 0
    assert "faces detected in 0 frames" not in capsys.readouterr().out and out.is_file()

    assert run(inference.main, list(map(str, [*common, "--outfile", tmp_path / "x.mp4",
                                              "--detector_checkpoint_path", only_pth / "s3fd.pth"]))) == 1
    assert capsys.readouterr().err == (
        f"error: S3FD as ONNX not found at {only_pth / 's3fd.onnx'} (--backend onnxruntime reads the .onnx beside the "
        f"S3FD weights): python export.py {only_pth / 's3fd.pth'} writes it\n")
    assert not (tmp_path / "x.mp4").exists()


def test_onnx_session_devices(exported):
    assert inference_session(exported / "wav2lip.onnx", "cpu").get_providers() == ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(UserError, match="no CUDA provider"):
            inference_session(exported / "wav2lip.onnx", "cuda")
    with pytest.raises(UserError, match="onnxruntime runs on cpu or cuda"):
        inference_session(exported / "wav2lip.onnx", "mps")
    (exported / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(UserError, match="not an ONNX model"):
        inference_session(exported / "junk.onnx", "cpu")


def test_face_detection_package_loads_lazily():
    assert face_detection.S3FD is S3FD and face_detection.S3FDDetector is S3FDDetector
    with pytest.raises(AttributeError):
        face_detection.nothing_here  # noqa: B018
