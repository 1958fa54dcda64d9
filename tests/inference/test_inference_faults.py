"""Bad input, a read-only folder, a full disk and audio of any rate: one line, no output."""

import av
import numpy as np
import pytest
from inference_assets import BOX, assets, cli, detector  # noqa: F401 - pytest fixtures
from support.confined import FULL_DISK, READ_ONLY, in_namespace, one_line_error

import audio
from media.synthetic import speech_like, write_media


def put(path, data):
    path.write_bytes(data)
    return path


ERROR_CASES = {
    "missing face": (lambda a, t: ["--face", t / "nope.mp4"], "video file not found"),
    "empty face": (lambda a, t: ["--face", put(t / "e.mp4", b"")], "is empty"),
    "junk face": (lambda a, t: ["--face", put(t / "j.mp4", b"\x00junk" * 99)], "cannot read"),
    "truncated face": (lambda a, t: ["--face", put(t / "cut.mp4", (a / "face30.mp4").read_bytes()[:900])], "cannot"),
    "face without video": (lambda a, t: ["--face", a / "speech0.6.wav"], "has no video stream"),
    "audio without audio": (lambda a, t: ["--audio", a / "face12.mp4"], "has no audio stream"),
    "missing audio": (lambda a, t: ["--audio", t / "nope.wav"], "audio file not found"),
    "short audio": (lambda a, t: ["--audio", write_media(t / "s.wav", speech_like(0.1)[None], 16000,
                                                       audio_codec="pcm_s16le")], "audio is too short"),
    "html checkpoint": (lambda a, t: ["--checkpoint_path", put(t / "w.pth", b"<!DOCTYPE html><html>Sign in</html>")], "is an HTML page"),
    "wrong checkpoint": (lambda a, t: ["--checkpoint_path", a / "sync.pth"], "expert lip-sync SyncNet"),
    "missing s3fd": (lambda a, t: ["--box", -1, -1, -1, -1, "--detector_path", t / "s3fd.pth"],
                     "S3FD face-detector weights not found"),
    "bad box": (lambda a, t: ["--box", 0, 500, 0, 50], "--box 0 500 0 50 does not fit in the 160x128 frame"),
    "bad crop": (lambda a, t: ["--crop", 50, 20, 0, -1], "--crop 50 20 0 -1 does not fit"),
    "output over input": (lambda a, t: ["--outfile", a / "face12.mp4"], "would be overwritten"),
}


@pytest.mark.parametrize("case", ERROR_CASES)
def test_bad_input_gives_one_line_and_no_output(assets, tmp_path, capsys, case):
    make, message = ERROR_CASES[case]
    outfile = tmp_path / "out" / "result.mp4"
    given = make(assets, tmp_path)
    audio_flag = [] if "--audio" in given else ["--audio", assets / "speech0.6.wav"]  # --audio twice: two voices
    argv = ["--checkpoint_path", assets / "constant.pth", "--face", assets / "face12.mp4", *audio_flag,
            "--outfile", outfile, "--box", *BOX, *given]
    before = (assets / "face12.mp4").read_bytes()
    code, captured = cli(argv, capsys)
    lines = captured.err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], captured.err
    assert not outfile.exists() and (assets / "face12.mp4").read_bytes() == before


# --- failures: a read-only folder, a full disk, audio of any rate ------------------------------

def inference_args(assets, outfile, *extra):
    audio_flag = [] if "--audio" in extra else ["--audio", assets / "speech1.4.wav"]  # --audio twice: two voices
    return ["--checkpoint_path", assets / "constant.pth", "--face", assets / "face30.mp4",
            *audio_flag, "--outfile", outfile, "--box", *BOX, "--quiet", *extra]


def test_a_read_only_output_folder_is_one_line_before_decoding(assets, tmp_path):
    folder = tmp_path / "results"
    outfile = folder / "sub" / "out.mp4"
    result = in_namespace(READ_ONLY + ' && "$PY" "$ROOT/inference.py" "$@"', folder,
                          *inference_args(assets, outfile, "--audio", tmp_path / "missing.wav"))
    # The folder is refused before the inputs are read (the missing audio is not reached).
    assert one_line_error(result) == f"error: {folder} is read-only (read-only file system)"


def test_a_read_only_face_cache_is_one_line_before_detecting(assets, tmp_path):
    cache = tmp_path / "cache"
    args = inference_args(assets, tmp_path / "out.mp4", "--face_cache", cache, "--detector_path", tmp_path / "none.pth")
    args[args.index("--box"):args.index("--box") + 5] = []  # detection, whose weights are missing: not reached
    result = in_namespace(READ_ONLY + ' && "$PY" "$ROOT/inference.py" "$@"', cache, *args)
    assert one_line_error(result) == f"error: {cache} is read-only (read-only file system)"


def test_a_full_disk_is_one_line_and_leaves_no_file(assets, tmp_path):
    folder = tmp_path / "results"
    long_audio = write_media(tmp_path / "long.wav", speech_like(8.0)[None], 16000, audio_codec="pcm_s16le")
    steps = FULL_DISK + ' && "$PY" "$ROOT/inference.py" "$@"; code=$?; ls -A "$FOLDER" > "$LISTING"; exit $code'
    result = in_namespace(steps, folder, *inference_args(assets, folder / "out.mp4", "--audio", long_audio,
                                                         "--crf", "0"), size="64k", LISTING=tmp_path / "listing")
    assert one_line_error(result) == f"error: no space left on the device of {folder / 'out.mp4'}"
    assert (tmp_path / "listing").read_text() == ""  # no output, no temporary


def test_audio_of_any_rate_is_encoded(assets, tmp_path, capsys):
    t = np.arange(192000) / 192000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t))[None]
    wav = write_media(tmp_path / "hifi.wav", tone, 192000, audio_codec="pcm_s24le")
    outfile = tmp_path / "out.mp4"
    code, captured = cli(inference_args(assets, outfile, "--audio", wav), capsys)
    assert code == 0, captured.err
    with av.open(str(outfile)) as container:
        assert container.streams.audio[0].rate == 48000
    heard = audio.load_wav(outfile, 16000)
    spectrum = np.abs(np.fft.rfft(heard))
    assert abs(spectrum.argmax() * 16000 / len(heard) - 440) < 2  # the same tone, resampled for AAC
