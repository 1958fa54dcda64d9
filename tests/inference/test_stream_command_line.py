"""stream.py: speech from a file or standard input, lip-synced as a stream into an mp4."""

import io
import sys

import av
import numpy as np
import pytest
from inference_assets import BOX, assets, decoded  # noqa: F401 - pytest fixtures

import audio
import inference
import stream as stream_script
from system.cli import run

BOX_FLAGS = ["--box", *map(str, BOX)]


def stream_cli(argv, capsys):
    code = run(stream_script.main, [*map(str, argv), "--quiet"])
    return code, capsys.readouterr()


def audio_seconds(path):
    with av.open(str(path)) as container:
        track = container.streams.audio[0]
        return sum(frame.samples for frame in container.decode(track)) / track.rate


def test_offline_the_mp4_holds_inference_pys_frames_encoded_and_the_speech(assets, tmp_path, capsys):
    code, out = stream_cli(["--checkpoint_path", assets / "gen.pth", "--face", assets / "face12.mp4", "--audio",
                            assets / "speech1.4.wav", *BOX_FLAGS, "--outfile", tmp_path / "stream.mp4", "--offline",
                            "--silence_db=-inf"], capsys)
    assert code == 0, out.err
    assert "35 frames, 32 speaking, latency p50" in out.out  # the speech after inference's last frame: idle frames
    assert run(inference.main, ["--checkpoint_path", str(assets / "gen.pth"), "--face", str(assets / "face12.mp4"),
                                "--audio", str(assets / "speech1.4.wav"), *BOX_FLAGS,
                                "--outfile", str(tmp_path / "file.mp4"), "--quiet"]) == 0
    streamed, filed = decoded(tmp_path / "stream.mp4"), decoded(tmp_path / "file.mp4")
    assert len(streamed) == 35 and len(filed) == 32
    # The same frames before encoding (test_stream.py); inference.py keeps the input's own YUV
    # samples outside the box where the stream hands over BGR frames, so the encoder's choices differ.
    assert max(np.abs(a.astype(int) - b).mean() for a, b in zip(streamed, filed)) < 2.5
    # all the speech, with the picture (within the last AAC frame's padding, 1024 samples, which
    # some decoders leave on)
    assert 1.4 <= audio_seconds(tmp_path / "stream.mp4") < 1.4 + 1024 / 16000
    with av.open(str(tmp_path / "stream.mp4")) as container:
        assert container.metadata["synthetic_content"] == "lip movements"
        assert "stream.py" in container.metadata["software"]


def test_raw_pcm_from_standard_input(assets, tmp_path, capsys, monkeypatch):
    samples = audio.load_wav(assets / "speech1.0.wav", 16000)
    pcm = np.rint(samples * 32768).astype("<i2").tobytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(pcm[:1001] + pcm[1001:])))
    code, out = stream_cli(["--checkpoint_path", assets / "gen.pth", "--face", assets / "face12.mp4", "--audio", "-",
                            *BOX_FLAGS, "--outfile", tmp_path / "stdin.mp4", "--offline"], capsys)
    assert code == 0, out.err
    assert "25 frames, 22 speaking" in out.out and len(decoded(tmp_path / "stdin.mp4")) == 25


@pytest.mark.parametrize("argv, message", [
    (["--audio", "missing.wav"], "audio file not found: missing.wav"),
    (["--audio", "{face}"], "has no audio stream"),
    (["--audio", "{speech}", "--syncnet_checkpoint_path", "{gen}"], "stream.py does not score the sync"),
    (["--audio", "{speech}", "--short_video", "stretch"], "a stream loops its face video"),
    (["--audio", "{speech}", "--audio", "{speech}"], "--audio is given 2 times: a stream lip-syncs one voice"),
    (["--audio", "{speech}", "--pick_face", "40,50", "--pick_face", "60,50"],
     "--pick_face is given 2 times: a stream lip-syncs one face to one voice"),
], ids=["missing", "no-audio", "syncnet", "short_video", "two voices", "two faces"])
def test_bad_input_is_one_line_before_the_work_and_leaves_nothing(assets, tmp_path, capsys, argv, message):
    names = {"face": assets / "face12.mp4", "speech": assets / "speech0.6.wav", "gen": assets / "gen.pth"}
    argv = [part.format(**names) for part in argv]
    code, out = stream_cli(["--checkpoint_path", assets / "gen.pth", "--face", assets / "face12.mp4", *BOX_FLAGS,
                            "--outfile", tmp_path / "out.mp4", *argv], capsys)
    assert code == 1 and message in out.err and len(out.err.strip().splitlines()) == 1
    assert "loading" not in out.err and "Traceback" not in out.err
    assert list(tmp_path.iterdir()) == []
