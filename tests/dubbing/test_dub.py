"""dub.py end to end: subtitles or text -> offline speech -> a lip-synced, marked video."""

import subprocess
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest
from conftest import ROOT
from support.synthetic_weights import save_released, seeded

import audio
import dub
from media import containers
from media.synthetic import face_frames, write_video
from models import Wav2Lip
from system.errors import UserError

TONE_HZ, TONE_LEVEL, RATE = 6000, 0.3, 22050  # the original soundtrack: a steady tone eSpeak barely reaches
SRT = """1
00:00:00,600 --> 00:00:01,800
Hello everybody.

2
00:00:02,200 --> 00:00:03,000
Welcome to the show.
"""


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("dub")
    save_released(seeded(Wav2Lip(), 0), d / "gen.pth")
    t = np.arange(16000) / 16000
    write_video(d / "face.mp4", face_frames(25), audio=TONE_LEVEL * np.sin(2 * np.pi * TONE_HZ * t))
    write_video(d / "silent.mp4", face_frames(5))
    (d / "talk.srt").write_text(SRT, encoding="utf-8")
    return d


def run_dub(inputs, out, *flags):
    return dub.main(["--checkpoint_path", str(inputs / "gen.pth"), "--face", str(inputs / "face.mp4"), "--outfile",
                     str(out), "--box", "20", "90", "30", "100", "--quiet", "--device", "cpu", *flags])


def tone_level(samples, start, end):
    """The tone's amplitude between ``start`` and ``end`` seconds, from its FFT bin."""
    piece = samples[round(start * RATE):round(end * RATE)]
    window = np.hanning(len(piece))
    spectrum = np.abs(np.fft.rfft(piece * window)) * 2 / window.sum()
    frequencies = np.fft.rfftfreq(len(piece), 1 / RATE)
    return spectrum[np.abs(frequencies - TONE_HZ) < 30].max()


def voice_level(samples, start, end):
    """RMS of what lies between 100 Hz and 4 kHz (where a voice is, and the tone is not)."""
    piece = samples[round(start * RATE):round(end * RATE)]
    spectrum = np.fft.rfft(piece)
    frequencies = np.fft.rfftfreq(len(piece), 1 / RATE)
    band = (frequencies > 100) & (frequencies < 4000)
    return np.sqrt(2 * np.sum(np.abs(spectrum[band]) ** 2)) / len(piece)


def test_cues_are_spoken_on_time_over_the_ducked_soundtrack_with_a_subtitle_track(inputs, tmp_path, capsys):
    out = tmp_path / "dubbed.mp4"
    assert run_dub(inputs, out, "--subtitles", str(inputs / "talk.srt"), "--original_audio", "duck",
                   "--duck_db", "12") == 0
    with av.open(str(out)) as container:
        tags = dict(container.metadata)
        cues = [(float(p.pts * p.time_base), bytes(p)[2:].decode()) for p in container.demux(container.streams.subtitles[0])
                if p.size > 2]
    assert tags["synthetic_content"] == "lip movements and speech" and "dub.py" in tags["software"]
    assert tags["speech_digital_source_type"].endswith("/algorithmicMedia") and "eSpeak NG" in tags["speech_synthesiser"]
    assert [text for _, text in cues] == ["Hello everybody.", "Welcome to the show."]
    assert [start for start, _ in cues] == pytest.approx([0.6, 2.2], abs=1 / 25)
    sound = audio.load_wav(out, RATE)
    # Speech starts at the first cue: no voice before it, a voice right after.
    assert voice_level(sound, 0.62, 0.9) > 20 * voice_level(sound, 0.05, 0.55)
    # The original tone: at full level before the speech, 12 dB lower while it plays.
    before, during = tone_level(sound, 0.05, 0.5), tone_level(sound, 0.7, 1.1)
    assert before == pytest.approx(TONE_LEVEL, rel=0.12)
    assert 20 * np.log10(before / during) == pytest.approx(12, abs=1.5)
    assert "Wrote" in capsys.readouterr().out


def test_a_bar_counts_the_cues_spoken_and_quiet_hides_it(inputs, tmp_path, capsys):
    flags = ["--checkpoint_path", str(inputs / "gen.pth"), "--face", str(inputs / "face.mp4"), "--outfile",
             str(tmp_path / "out.mp4"), "--box", "20", "90", "30", "100", "--device", "cpu",
             "--subtitles", str(inputs / "talk.srt")]
    assert dub.main(flags) == 0
    err = capsys.readouterr().err
    assert "speech: 100%" in err and " 2/2 " in err and f"loading the Wav2Lip generator from {inputs / 'gen.pth'}" in err
    assert dub.main([*flags, "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "speech:" not in err and "loading" not in err and "lip-sync:" not in err


@pytest.mark.parametrize("face", ["face.mp4", "still.png"])
def test_the_sound_ends_with_the_last_frame(inputs, tmp_path, face):
    cv2.imwrite(str(tmp_path / "still.png"), face_frames(1)[0])
    face = tmp_path / face if face == "still.png" else inputs / face
    out = tmp_path / "dubbed.mp4"
    assert run_dub(inputs, out, "--text", "Good morning.", "--face", str(face)) == 0
    ends = containers.stream_ends(out)
    with av.open(str(out)) as container:
        one_aac_frame = Fraction(1024, container.streams.audio[0].rate)
    assert abs(ends["audio"] - ends["video"]) <= one_aac_frame


def test_text_is_spoken_whole_over_silence(inputs, tmp_path):
    out = tmp_path / "said.mp4"
    assert run_dub(inputs, out, "--text", "Good morning, and thank you for listening.", "--voice", "en") == 0
    from dubbing.engines import speech_engine

    expected = speech_engine("espeak").synthesize("Good morning, and thank you for listening.", "en").seconds
    sound = audio.load_wav(out, RATE)
    assert len(sound) / RATE == pytest.approx(expected, abs=0.1)
    assert tone_level(sound, 0.1, expected - 0.1) < 0.01  # muted: the original is gone
    with av.open(str(out)) as container:
        assert not container.streams.subtitles and len(container.streams.audio) == 1


@pytest.mark.parametrize("flags, message", [
    (["--text", "   "], "--text is empty"),
    (["--text_file", "NOWHERE.txt"], "--text_file not found"),
    (["--text", "hi", "--voice", "xx-nowhere"], "--voice 'xx-nowhere'"),
    (["--text", "hi", "--original_audio", "duck", "--face", "SILENT"], "has no soundtrack to keep"),
    (["--text", "hi", "--max_speedup", "0.5"], "--max_speedup 0.5"),
    (["--subtitles", "BAD"], "line 2: malformed timestamp"),
])
def test_bad_input_is_one_line_and_writes_nothing(inputs, tmp_path, flags, message):
    (tmp_path / "bad.srt").write_text("1\n00:00:01 --> 00:00:02,000\nHi\n", encoding="utf-8")
    flags = [f.replace("SILENT", str(inputs / "silent.mp4")).replace("BAD", str(tmp_path / "bad.srt")) for f in flags]
    with pytest.raises(UserError, match=message):
        run_dub(inputs, tmp_path / "out.mp4", *flags)
    assert not (tmp_path / "out.mp4").exists()


def test_exactly_one_source_of_words():
    with pytest.raises(SystemExit):
        dub.build_parser().parse_args(["--checkpoint_path", "g.pth", "--face", "f.mp4"])
    with pytest.raises(SystemExit):
        dub.build_parser().parse_args(["--checkpoint_path", "g.pth", "--face", "f.mp4", "--text", "a", "--subtitles", "b"])


def test_no_subtitle_track_leaves_the_cues_out(inputs, monkeypatch):
    import dubbing.dub

    seen = []
    monkeypatch.setattr(dubbing.dub, "lip_sync", lambda options: seen.append(options.subtitles))
    for flags in ([], ["--no_subtitle_track"]):
        args = dub.build_parser().parse_args(["--checkpoint_path", "g.pth", "--face", str(inputs / "face.mp4"),
                                              "--subtitles", str(inputs / "talk.srt"), *flags])
        dubbing.dub.dub(dubbing.dub.Speaking.from_args(args), dub.Options.from_args(args, audio=""),
                        notes=lambda line: None)
    assert [[text for _, _, text in cues] for cues in seen] == [["Hello everybody.", "Welcome to the show."], []]


def test_a_dub_killed_mid_run_leaves_no_scratch_file_and_a_rerun_is_clean(inputs, tmp_path, monkeypatch):
    from support import confined

    scratch, results = tmp_path / "tmp", tmp_path / "results"
    scratch.mkdir()
    monkeypatch.setitem(confined.ENV, "TMPDIR", str(scratch))  # where tempfile would leave its files
    command = [confined.PYTHON, str(ROOT / "dub.py"), "--checkpoint_path", str(inputs / "gen.pth"), "--face",
               str(inputs / "silent.mp4"), "--text", "Hello there.", "--outfile", str(results / "d.mp4"),
               "--box", "20", "90", "30", "100", "--quiet", "--device", "cpu"]
    # Killed once the video is being written: the speech it is made from exists by then.
    confined.kill_when(command, lambda: any(p.name.startswith(".d.mp4.") and p.stat().st_size > 0
                                            for p in confined.temporaries(results)))
    assert list(scratch.iterdir()) == []
    done = subprocess.run(command, env=confined.ENV, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in results.iterdir()) == ["d.mp4"] and list(scratch.iterdir()) == []
