"""inference.py's command line: every flag reaches the options, H.264 + AAC out, odd rates, sizes and rotation."""

import subprocess
import sys
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest
from conftest import ROOT
from inference_assets import (  # noqa: F401 - pytest fixtures
    BOX,
    assets,
    chunk_count,
    cli,
    decoded,
    outside,
)

import inference
from lipsync import Options
from lipsync.audio_chunks import mel_chunk_starts
from media.containers import stream_ends
from media.synthetic import face_frames, write_video


def probe(path):
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video))
        return {"frames": frames, "rate": video.average_rate, "size": (video.width, video.height),
                "audio": len(container.streams.audio), "codec": video.codec_context.name,
                "pix_fmt": video.codec_context.pix_fmt,
                "audio_seconds": float(container.streams.audio[0].duration * container.streams.audio[0].time_base)
                if container.streams.audio else 0.0}


def test_every_flag_reaches_the_options_by_name():
    import dataclasses

    parser = inference.build_parser()
    fields = {field.name for field in dataclasses.fields(Options)}
    flags = {action.dest for action in parser._actions} - {"help", "quiet"}
    # Set by the evaluation scripts and dub.py, not by flags (boxes, audios, pick_faces: --box, --audio and
    # --pick_face given more than once):
    assert flags <= fields and fields - flags == {"progress", "resize_to", "tool", "synthetic_speech", "subtitles",
                                                  "generation_record", "boxes", "audios", "pick_faces", "soundtrack",
                                                  "voice_names"}
    args = parser.parse_args(["--checkpoint_path", "g.pth", "--face", "f.mp4", "--audio", "a.wav", "--pads", "1", "2",
                              "3", "4", "--box", "5", "6", "7", "8", "--det_stride", "3", "--device", "cpu", "--quiet"])
    options = Options.from_args(args)
    assert options.pads == (1, 2, 3, 4) and options.box == (5, 6, 7, 8) and options.crop == (0, -1, 0, -1)
    assert options.det_stride == 3 and options.device == "cpu" and options.progress is False
    assert options == Options("g.pth", "f.mp4", "a.wav", pads=(1, 2, 3, 4), box=(5, 6, 7, 8), det_stride=3,
                              device="cpu", progress=False)


def test_command_line_writes_h264_aac_with_every_chunk_and_paths_can_hold_anything(assets, tmp_path):
    odd = tmp_path / "we ird 'q\" ;$(touch pwned)"
    odd.mkdir()
    (odd / "face.mp4").write_bytes((assets / "face12.mp4").read_bytes())
    (odd / "speech.wav").write_bytes((assets / "speech1.0.wav").read_bytes())
    work = tmp_path / "cwd"
    work.mkdir()
    outfile = odd / "out dir" / "result $(x).mp4"
    result = subprocess.run(
        [sys.executable, str(ROOT / "inference.py"), "--checkpoint_path", str(assets / "constant.pth"),
         "--face", str(odd / "face.mp4"), "--audio", str(odd / "speech.wav"), "--outfile", str(outfile),
         "--box", *map(str, BOX), "--quiet"],
        cwd=work, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Wrote" in result.stdout and "22 frames" in result.stdout
    info = probe(outfile)
    assert info["frames"] == 22 and info["rate"] == 25 and info["audio"] == 1
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p"
    assert info["audio_seconds"] == pytest.approx(22 / 25, abs=1e-3)  # cut at the last frame
    assert list(work.iterdir()) == [] and not (tmp_path / "pwned").exists()
    assert sorted(p.name for p in outfile.parent.iterdir()) == [outfile.name]


def test_29_97_fps_stays_29_97_and_odd_sizes_and_rotation_are_handled(assets, tmp_path, capsys):
    rate = Fraction(30000, 1001)
    phone = write_video(tmp_path / "phone.mp4", face_frames(12), rate=rate, rotation=-90)  # shown rotated
    upright = decoded(phone)
    assert upright[0].shape == (160, 128, 3)
    out = tmp_path / "out.mp4"
    code, captured = cli(["--checkpoint_path", assets / "constant.pth", "--face", phone, "--audio",
                          assets / "speech1.0.wav", "--outfile", out, "--box", *BOX, "--crop", 0, 155, 0, 127], capsys)
    assert code == 0, captured.err
    info = probe(out)
    assert info["rate"] == rate and info["size"] == (128, 156)  # 127 x 155 padded to even
    assert info["frames"] == len(mel_chunk_starts(81, float(rate))) == 26
    written = decoded(out)[5][:155, :127]
    assert np.abs(outside(written).astype(int) - outside(upright[5][:155, :127])).mean() < 3


AAC_FRAME_AT_16K = Fraction(1024, 16000)  # the speech is 16 kHz: one AAC frame is 64 ms


@pytest.mark.parametrize("face", ["face12.mp4", "still.png"])
def test_the_sound_ends_with_the_last_frame(assets, tmp_path, capsys, face):
    # The frames stop at the last mel chunk, 0.1-0.2 s before the speech ends: the sound is cut there.
    cv2.imwrite(str(tmp_path / "still.png"), face_frames(1)[0])
    face = tmp_path / face if face == "still.png" else assets / face
    out = tmp_path / "out.mp4"
    code, captured = cli(["--checkpoint_path", assets / "constant.pth", "--face", face, "--audio",
                          assets / "speech1.4.wav", "--outfile", out, "--box", *BOX], capsys)
    assert code == 0, captured.err
    ends = stream_ends(out)
    assert ends["video"] == Fraction(chunk_count(1.4), 25)
    assert abs(ends["audio"] - ends["video"]) <= AAC_FRAME_AT_16K
