"""The generator's side: sync similarity, CPU precisions, fp16 (the GPU's path), batches in flight and threads."""

import gc
import json
import re
import threading
import time

import cv2
import numpy as np
import pytest
import torch
from inference_assets import (  # noqa: F401 - pytest fixtures
    BOX,
    CONSTANT_BGR,
    assert_close,
    assets,
    cli,
    decoded,
    detector,
    outside,
    synced,
)

import audio
from lipsync import Options, generator, lip_sync, pipeline
from lipsync.audio_chunks import mel_chunk_starts
from models import SyncNet_color


def test_sync_similarity_of_input_and_result(assets, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    code, captured = cli(["--checkpoint_path", assets / "constant.pth", "--face", assets / "face12.mp4", "--audio",
                          assets / "speech0.6.wav", "--outfile", out, "--box", *BOX,
                          "--syncnet_checkpoint_path", assets / "sync.pth"], capsys)
    assert code == 0, captured.err
    assert "Voice/face sync of the input video" in captured.out and "DescribeResult(nobs=8, minmax=(" in captured.out
    # OUTFILE.sync.json, as --help says, and the report names it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4", "out.mp4.sync.json"]
    assert f"Per-chunk values: {tmp_path / 'out.mp4.sync.json'}" in captured.out.splitlines()
    scores = json.loads((tmp_path / "out.mp4.sync.json").read_text())
    assert scores["chunks"] == list(range(8)) and len(scores["input"]) == len(scores["result"]) == 8

    # chunk 2 against input frames 2..6, computed directly
    y1, y2, x1, x2 = BOX
    faces = [cv2.resize(f[y1:y2, x1:x2], (96, 96))[48:] for f in decoded(assets / "face12.mp4")[2:7]]
    mel = audio.melspectrogram(audio.load_wav(assets / "speech0.6.wav", 16000))
    start = mel_chunk_starts(mel.shape[1], 25.0)[2]
    net = SyncNet_color()
    net.load_state_dict({k[7:]: v for k, v in torch.load(assets / "sync.pth", weights_only=True)["state_dict"].items()})
    with torch.no_grad():
        a, v = net.eval()(torch.tensor(mel[None, None, :, start:start + 16], dtype=torch.float32),
                          torch.tensor(np.concatenate(faces, axis=2).transpose(2, 0, 1)[None] / 255, dtype=torch.float32))
    assert abs(float((a * v).sum()) - scores["input"][2]) < 1e-4
    constant_face = np.full((48, 96, 15), 0, np.uint8) + np.tile(np.array(CONSTANT_BGR, np.uint8), 5)
    with torch.no_grad():
        _, v = net(torch.tensor(mel[None, None, :, start:start + 16], dtype=torch.float32),
                   torch.tensor(constant_face.transpose(2, 0, 1)[None] / 255, dtype=torch.float32))
    assert abs(float((a * v).sum()) - scores["result"][2]) < 1e-4


def test_cpu_precision_options(assets):
    got, _ = synced(assets, box=BOX, precision="bf16")
    y1, y2, x1, x2 = BOX
    assert np.abs(got[3][y1:y2, x1:x2].astype(int) - CONSTANT_BGR).max() <= 2  # bf16 rounding of the bias
    assert np.array_equal(outside(got[3]), outside(decoded(assets / "face12.mp4")[3]))


def test_fp16_the_path_a_gpu_takes_runs_on_the_cpu(assets):
    """--precision fp16 (auto's choice on CUDA) under CPU autocast: the same frames as fp32,
    up to half-precision rounding of a random network (which amplifies it in a few pixels)."""
    exact, _ = synced(assets, "gen.pth", box=BOX, precision="fp32")
    half, _ = synced(assets, "gen.pth", box=BOX, precision="fp16")
    y1, y2, x1, x2 = BOX
    for a, b in zip(exact, half, strict=True):
        difference = np.abs(a.astype(int) - b.astype(int))
        assert difference[y1:y2, x1:x2].mean() < 0.2 and (difference[y1:y2, x1:x2] > 2).mean() < 0.02
        assert np.array_equal(outside(a), outside(b))
    assert any(not np.array_equal(a, b) for a, b in zip(exact, half))  # it really ran in fp16


def test_two_batches_generate_at_once_on_the_cpu_and_frames_stay_in_order(assets, monkeypatch):
    """With a fixed box on a CPU of several cores two batches run side by side, on half the
    threads each (5 -> 3 + 2); a batch that comes back late is still written in its place."""
    expected, _ = synced(assets, "audio_only.pth", "face12.mp4", 1.0, box=BOX)
    calls, generate = [], generator.TorchGenerator.generate

    def first_batch_last(self, faces, mels):
        calls.append((threading.current_thread().name, torch.get_num_threads()))
        if len(calls) == 1:
            time.sleep(0.5)  # the first batch (of one frame) ends after the next one
        return generate(self, faces, mels)

    monkeypatch.setattr(generator.TorchGenerator, "generate", first_batch_last)
    threads = torch.get_num_threads()
    torch.set_num_threads(5)
    try:
        got, summary = synced(assets, "audio_only.pth", "face12.mp4", 1.0, box=BOX)
        assert torch.get_num_threads() == 5  # given back after the run
    finally:
        torch.set_num_threads(threads)
    assert len({name for name, _ in calls}) == 2 and {count for _, count in calls} == {3, 2}
    assert summary.timings["busy"]["generator"] <= 1.0  # shared by the two
    assert len(got) == len(expected) == 22
    for a, b in zip(got, expected):
        assert_close(a, b)  # consecutive frames differ by more than this (see the pairing test)


def test_a_generator_failing_mid_run_stops_every_stage_and_leaves_no_file(assets, tmp_path, monkeypatch):
    calls, generate = [], generator.TorchGenerator.generate

    def fails_at_the_fourth_batch(self, faces, mels):
        calls.append(len(faces))
        if len(calls) == 4:
            raise RuntimeError("out of memory (simulated)")
        return generate(self, faces, mels)

    monkeypatch.setattr(generator.TorchGenerator, "generate", fails_at_the_fourth_batch)

    def running():  # tqdm's monitor thread comes and goes on its own
        return {thread for thread in threading.enumerate() if type(thread).__name__ != "TMonitor"}

    before = running()
    options = Options(str(assets / "gen.pth"), str(assets / "face30.mp4"), str(assets / "speech1.4.wav"),
                      outfile=str(tmp_path / "out.mp4"), box=BOX, progress=False)
    with pytest.raises(RuntimeError, match="simulated"):
        lip_sync(options)
    assert list(tmp_path.iterdir()) == []  # no output, no temporary
    assert running() == before  # every stage and worker thread ended
    assert len(calls) <= 6  # the batches queued behind the failure were dropped


def test_no_garbage_collection_while_the_generator_loads(assets, monkeypatch):
    """Loading makes many objects and frees none: collections there only cost time. What it
    made is frozen once, so later collections skip it; only once, so that no garbage of a
    caller running lip_sync once per video is kept."""
    collections, at_load = [], []
    load = generator.TorchGenerator.__init__

    def loaded(self, *args):
        load(self, *args)
        at_load.append(len(collections))

    monkeypatch.setattr(generator.TorchGenerator, "__init__", loaded)
    gc.callbacks.append(lambda phase, info: collections.append(phase))
    try:
        options = Options(str(assets / "gen.pth"), "f.mp4", "a.wav", box=BOX)
        assert pipeline.generator_for(options).batch_size == 8
        frozen = gc.get_freeze_count()
        collections.clear()
        pipeline.generator_for(options)
        assert at_load == [0, 0] and gc.isenabled()  # none from the call's start to the model loaded
        assert frozen > 0 and gc.get_freeze_count() == frozen
        gc.disable()
        pipeline.generator_for(options)
        assert not gc.isenabled()  # a caller's choice is kept
    finally:
        gc.enable()
        gc.callbacks.pop()


def test_x264_beside_a_generator_on_the_cpu_gets_one_thread_per_four_cores(assets, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "usable_cores", lambda: 8)
    outfile = tmp_path / "out.mp4"
    lip_sync(Options(str(assets / "gen.pth"), str(assets / "face30.mp4"), str(assets / "speech1.4.wav"),
                     outfile=str(outfile), box=BOX, progress=False))
    settings = re.search(rb"options: ([ -~]+)", outfile.read_bytes()).group(1).split()  # x264's own record
    assert b"threads=2" in settings
    assert pipeline.encoder_threads(torch.device("cuda")) == 0  # beside a GPU, as many as x264 likes
    monkeypatch.setattr(pipeline, "usable_cores", lambda: 2)
    assert pipeline.encoder_threads(torch.device("cpu")) == pipeline.encoder_threads("cpu") == 1


def test_while_s3fd_runs_beside_it_the_generator_runs_one_batch_on_every_thread(assets, detector, monkeypatch):
    calls, generate = [], generator.TorchGenerator.generate

    def recorded(self, faces, mels):
        calls.append((threading.current_thread().name, torch.get_num_threads()))
        return generate(self, faces, mels)

    monkeypatch.setattr(generator.TorchGenerator, "generate", recorded)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        synced(assets)
    finally:
        torch.set_num_threads(threads)
    assert len({name for name, _ in calls}) == 1 and {count for _, count in calls} == {2}


@pytest.mark.parametrize("flags, native", [
    ("flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512vl", False),  # bf16 emulated: 3-4x slower than fp32
    ("flags\t\t: fpu avx2 avx512f avx512_bf16", True),
    ("flags\t\t: fpu avx512f amx_tile amx_bf16", True),
    ("Features\t: fp asimd sve bf16", True),  # Arm
    ("Features\t: fp asimd", False),
])
def test_native_bf16_reads_the_cpu_s_flags_not_onednn_s_emulation(tmp_path, flags, native):
    (tmp_path / "cpuinfo").write_text(f"processor\t: 0\nmodel name\t: some cpu\n{flags}\n\n")
    assert generator.native_bf16(tmp_path / "cpuinfo") is native


def test_auto_precision_notes_what_native_bf16_would_give(monkeypatch, capsys):
    monkeypatch.setattr(generator, "native_bf16", lambda: True)
    generator.suggest_bf16(torch.device("cpu"), "auto")
    note = capsys.readouterr().err
    assert note.count("\n") == 1 and "--precision bf16" in note and "about 2-3x faster" in note
    for device, precision in (("cpu", "fp32"), ("cpu", "bf16"), ("cuda", "auto")):
        generator.suggest_bf16(torch.device(device), precision)
    monkeypatch.setattr(generator, "native_bf16", lambda: False)
    generator.suggest_bf16(torch.device("cpu"), "auto")
    assert capsys.readouterr().err == ""
