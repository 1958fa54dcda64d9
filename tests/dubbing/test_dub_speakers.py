"""A dialogue dubbed in one command: speakers read from the subtitles, each given a face and a voice."""

import json
import re

import numpy as np
import pytest
from support.synthetic_weights import save_released, seeded

import audio
import dub
import dubbing.dub
from dubbing.speakers import Speakers
from dubbing.speech import Speech
from dubbing.subtitles import Cue, read_cues
from media import containers
from media.synthetic import speech_like, write_video
from models import SyncNet_color, Wav2Lip
from system.errors import UserError

RATE = 22050
SMALL, LARGE = (30, 80, 20, 60), (20, 90, 140, 200)  # two faces: top bottom left right
ALICE, BOB = "40,50", "150,40"  # a pixel of each
DIALOGUE = """WEBVTT

00:00.100 --> 00:00.500
<v Alice>Hello Bob.</v>

00:00.600 --> 00:01.000
<v.loud Bob>Hi Alice, how are you?

00:01.100 --> 00:01.400
And now a word from nobody.

00:01.400 --> 00:01.800
<v Alice>Fine, thanks.
"""


def two_faces(count):
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(count):
        frame = np.full((128, 240, 3), 60, np.uint8)
        for top, bottom, left, right in (SMALL, LARGE):
            frame[top:bottom, left:right] = rng.integers(215, 256, (bottom - top, right - left, 3), np.uint8)
        frames.append(frame)
    return frames


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("dialogue")
    write_video(d / "two.mp4", two_faces(10))
    (d / "talk.vtt").write_text(DIALOGUE, encoding="utf-8")
    save_released(seeded(Wav2Lip(), 0), d / "gen.pth")
    save_released(seeded(SyncNet_color(), 1), d / "sync.pth")
    return d


class RecordingVoice:
    """A speech engine that says each cue as a steady sound, recording the voice asked for."""

    name, synthesiser, digital_source_type, sample_rate = "recording", "a recording voice", "", RATE
    asked = []

    def check_voice(self, voice, given=None):
        if voice == "nobody":
            raise UserError(f"{given or f'--voice {voice!r}'}: no such voice")

    def synthesize(self, text, voice="en", rate=1.0, pitch=50):
        RecordingVoice.asked.append((text, voice))
        return Speech(speech_like(0.3, RATE, seed=len(text)), RATE)


def dub_flags(inputs, tmp_path, *flags):
    return ["--checkpoint_path", str(inputs / "gen.pth"), "--face", str(inputs / "two.mp4"), "--outfile",
            str(tmp_path / "dialogue.mp4"), "--subtitles", str(inputs / "talk.vtt"), "--box", *map(str, SMALL),
            "--box", *map(str, LARGE), "--quiet", *flags]


def dub_up_to_lip_sync(inputs, tmp_path, monkeypatch, *flags):
    """dub.py up to the lip-sync, which instead reports what it was given: the options, each
    voice's track and the soundtrack (read while they exist); also the warnings."""
    given, notes = {}, []

    def lip_sync(options):
        given["options"] = options
        given["voices"] = [audio.load_wav(path, RATE) for path, _ in options.voices]
        given["soundtrack"] = audio.load_wav(options.soundtrack or options.audio, RATE)

    RecordingVoice.asked = []
    monkeypatch.setattr(dubbing.dub, "speech_engine", lambda name: RecordingVoice())
    monkeypatch.setattr(dubbing.dub, "lip_sync", lip_sync)
    args = dub.build_parser().parse_args(dub_flags(inputs, tmp_path, *flags))
    dubbing.dub.dub(dubbing.dub.Speaking.from_args(args), dub.Options.from_args(args, audio=""), notes=notes.append)
    return given, notes


def loud(samples, start, end):
    piece = samples[round(start * RATE):round(end * RATE)]
    return float(np.sqrt(np.mean(piece.astype(np.float64) ** 2))) if len(piece) else 0.0


def test_speakers_are_read_from_webvtt_voices_and_srt_names_only_when_asked(tmp_path):
    cues = read_cues_of(tmp_path, "talk.vtt", DIALOGUE, speakers=True)
    assert [(cue.speaker, cue.text) for cue in cues] == [("Alice", "Hello Bob."), ("Bob", "Hi Alice, how are you?"),
                                                         (None, "And now a word from nobody."),
                                                         ("Alice", "Fine, thanks.")]
    srt = "1\n00:00:01,000 --> 00:00:02,000\nDr. Jean-Luc: Make it\nso.\n\n2\n00:00:03,000 --> 00:00:04,000\n" \
          "10:30 is late.\n\n3\n00:00:05,000 --> 00:00:06,000\nALICE:\nYes.\n"
    cues = read_cues_of(tmp_path, "talk.srt", srt, speakers=True)
    assert [(cue.speaker, cue.text) for cue in cues] == [("Dr. Jean-Luc", "Make it so."), (None, "10:30 is late."),
                                                         ("ALICE", "Yes.")]
    assert read_cues_of(tmp_path, "talk.srt", srt)[0] == Cue(1.0, 2.0, "Dr. Jean-Luc: Make it so.", 2)  # as before
    with pytest.raises(UserError, match=r"^.*two.vtt line 3: the cue has 2 speakers \(A, B\); give each its own cue"):
        read_cues_of(tmp_path, "two.vtt", "WEBVTT\n\n00:00.100 --> 00:00.500\n<v A>Hi</v> <v B>Hello</v>\n",
                     speakers=True)
    with pytest.raises(UserError, match=r"^.*empty.srt line 2: the cue has no text$"):
        read_cues_of(tmp_path, "empty.srt", "1\n00:00:01,000 --> 00:00:02,000\nBob:\n", speakers=True)
    dialogue = "1\n00:00:01,000 --> 00:00:02,000\n- Ann: Hello.\n"
    assert read_cues_of(tmp_path, "dash.srt", dialogue, speakers=True)[0].speaker == "Ann"  # a dialogue dash
    for both, said in (("Ann: Hello.\nBob: Hi.", "Ann, Bob"), ("- Ann: Hello.\n- Bob: Hi.", "Ann, Bob"),
                       ("Hello.\nBob: Hi.", "no one named, Bob")):
        with pytest.raises(UserError, match=rf"^.*both.srt line 2: the cue has 2 speakers \({said}\); give each"):
            read_cues_of(tmp_path, "both.srt", f"1\n00:00:01,000 --> 00:00:02,000\n{both}\n", speakers=True)


def read_cues_of(tmp_path, name, text, speakers=False):
    (tmp_path / name).write_text(text, encoding="utf-8")
    return read_cues(tmp_path / name, speakers=speakers)


@pytest.mark.parametrize("faces, voices, said", [
    (["Bob"], [], "--speaker_face takes NAME=X,Y, not 'Bob'"),
    (["Bob="], [], "--speaker_face takes NAME=X,Y, not 'Bob='"),
    (["Bob=1,2", "Bob=3,4"], [], "--speaker_face names Bob twice (Bob=1,2, Bob=3,4)"),
    (["Bob=largest"], [], "--speaker_face Bob=largest: give a pixel of the speaker's face, X,Y"),
    (["Bob=x"], [], "--speaker_face Bob=x: give a pixel of the speaker's face, X,Y"),
    ([], ["=es"], "--speaker_voice takes NAME=VOICE, not '=es'"),
    (["Ann=40,50", "Bob=40, 50"], [], "--speaker_face Ann=40,50 and --speaker_face Bob=40, 50 give the same pixel: each "
                                  "speaker needs a face of their own"),
])
def test_malformed_mappings_are_one_line(faces, voices, said):
    with pytest.raises(UserError, match=f"^{re.escape(said)}$"):
        Speakers.from_flags(faces, voices)


def test_each_speaker_s_speech_alone_drives_their_face_and_everyone_is_heard(inputs, tmp_path, monkeypatch):
    given, notes = dub_up_to_lip_sync(inputs, tmp_path, monkeypatch, "--speaker_face", f"Alice={ALICE}",
                                      "--speaker_face", f"Bob={BOB}", "--speaker_voice", "Bob=es", "--voice", "fr")
    options = given["options"]
    assert [pick for _, pick in options.voices] == [ALICE, BOB]  # in the order they first speak
    assert RecordingVoice.asked == [("Hello Bob.", "fr"), ("Hi Alice, how are you?", "es"),
                                    ("And now a word from nobody.", "fr"), ("Fine, thanks.", "fr")]
    alice, bob = given["voices"]
    everyone = given["soundtrack"]
    assert len(alice) == len(bob) == len(everyone)
    cues = [(0.1, 0.4), (0.6, 0.9), (1.1, 1.4), (1.4, 1.7)]  # where each cue's 0.3 s of speech lies
    assert [loud(alice, *span) > 0.05 for span in cues] == [True, False, False, True]
    assert [loud(bob, *span) > 0.05 for span in cues] == [False, True, False, False]
    assert [loud(everyone, *span) > 0.05 for span in cues] == [True, True, True, True]
    unnamed = everyone - alice - bob  # what the faces' tracks leave out: the cue no face says
    outside = np.ones(len(everyone), bool)
    outside[round(1.1 * RATE) - 2:round(1.4 * RATE) + 2] = False
    assert np.abs(unnamed[outside]).max() < 1e-6 and loud(unnamed, 1.1, 1.4) > 0.05
    assert notes == [f"cues of {'no one named'} (1 cue) in {inputs / 'talk.vtt'} are spoken but move no mouth: no "
                     "--speaker_face NAME=X,Y for them"]
    assert list(tmp_path.iterdir()) == []  # the speech files are gone with the run


def test_one_speaker_with_a_face_is_one_voice_over_everyone_s_speech(inputs, tmp_path, monkeypatch):
    given, notes = dub_up_to_lip_sync(inputs, tmp_path, monkeypatch, "--speaker_face", f"Bob={BOB}")
    options = given["options"]
    assert (options.audios, options.pick_face) == ((), BOB) and options.soundtrack is not None
    (bob,) = given["voices"]
    assert loud(bob, 0.1, 0.4) == 0 and loud(bob, 0.6, 0.9) > 0.05 and loud(given["soundtrack"], 0.1, 0.4) > 0.05
    assert len(notes) == 1 and notes[0].startswith("cues of Alice (2 cues), no one named (1 cue) in ")


def test_voices_alone_keep_one_face_for_every_cue(inputs, tmp_path, monkeypatch):
    given, notes = dub_up_to_lip_sync(inputs, tmp_path, monkeypatch, "--speaker_voice", "Alice=de",
                                      "--pick_face", ALICE)
    assert [voice for _, voice in RecordingVoice.asked] == ["de", "en", "en", "de"]
    assert given["options"].soundtrack is None and given["options"].pick_face == ALICE and notes == []


@pytest.mark.parametrize("flags, said", [
    (["--speaker_face", "Carol=40,50"], r"--speaker_face Carol=40,50: Carol never speaks in .*talk.vtt \(its "
                                        r"speakers: Alice, Bob; <v Carol> in WebVTT, 'Carol: \.\.\.' at the start of a "
                                        r"cue\)$"),
    (["--speaker_voice", "Carol=es"], r"--speaker_voice Carol=es: Carol never speaks in "),
    (["--speaker_face", "Alice=40,50", "--pick_face", "150,40"],
     r"--pick_face 150,40 and --speaker_face both choose faces: with speakers, give each one's face with "
     r"--speaker_face NAME=X,Y$"),
    (["--speaker_face", "Alice=40,50", "--speaker_face", "Bob=41,51"],
     r"--speaker_face Alice=40,50 and --speaker_face Bob=41,51 name the same --box 30 80 20 60: each voice needs a "
     r"face of its own$"),
    (["--speaker_face", "Alice=040,050", "--speaker_face", "Bob=041,051"],
     r"--speaker_face Alice=040,050 and --speaker_face Bob=041,051 name the same --box 30 80 20 60: each voice needs "
     r"a face of its own$"),
    (["--speaker_face", "Alice=40,50", "--speaker_face", "Bob=400,51"],
     r"--speaker_face Bob=400,51: none of the 2 --box holds that pixel$"),
    (["--speaker_face", "Alice=40,50", "--speaker_voice", "Bob=nobody"],
     r"--speaker_voice Bob=nobody: no such voice$"),
    (["--pick_face", "40,50", "--pick_face", "150,40"],
     r"dub.py takes one --pick_face; give each speaker's face with --speaker_face NAME=X,Y$"),
])
def test_speakers_that_cannot_be_dubbed_are_one_line_before_any_speech(inputs, tmp_path, monkeypatch, flags, said):
    monkeypatch.setattr(RecordingVoice, "synthesize", lambda *args, **kwargs: pytest.fail("speech made before the check"))
    with pytest.raises(UserError, match=f"^{said}"):
        dub_up_to_lip_sync(inputs, tmp_path, monkeypatch, *flags)


def test_speakers_need_subtitles(inputs, tmp_path, monkeypatch):
    args = dub.build_parser().parse_args(["--checkpoint_path", "g.pth", "--face", str(inputs / "two.mp4"),
                                          "--text", "Hello.", "--speaker_face", "Alice=40,50"])
    with pytest.raises(UserError, match="^--speaker_face and --speaker_voice name the speakers of --subtitles: give "
                                        "--subtitles$"):
        dubbing.dub.dub(dubbing.dub.Speaking.from_args(args), dub.Options.from_args(args, audio=""))


def test_a_dialogue_is_dubbed_in_one_command(inputs, tmp_path, capsys):
    """eSpeak NG, two voices, both faces lip-synced in one pass: the video and its sound come out
    whole, with nothing left beside them."""
    code = dub.main(dub_flags(inputs, tmp_path, "--speaker_face", f"Alice={ALICE}", "--speaker_face", f"Bob={BOB}",
                              "--speaker_voice", "Bob=es", "--device", "cpu", "--syncnet_checkpoint_path",
                              str(inputs / "sync.pth")))
    assert code == 0
    out = tmp_path / "dialogue.mp4"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["dialogue.mp4", "dialogue.mp4.sync.json"]
    scores = json.loads((tmp_path / "dialogue.mp4.sync.json").read_text())
    assert [(voice["voice"], voice["pick_face"]) for voice in scores["voices"]] == [("Alice", ALICE), ("Bob", BOB)]
    captured = capsys.readouterr()
    assert f"Voice/face sync of the result (face at {ALICE}, Alice): " in captured.out
    assert "fixed --box; face cache" in captured.out
    ends = containers.stream_ends(out)
    assert ends["video"] >= 1.8 and abs(ends["audio"] - ends["video"]) < 0.05
    heard = audio.load_wav(out, RATE)
    assert loud(heard, 0.15, 0.45) > 0.01 and loud(heard, 0.65, 0.95) > 0.01  # Alice, then Bob
    frames = list(containers.read_frames(out))
    before = two_faces(1)[0]
    for top, bottom, left, right in (SMALL, LARGE):  # both faces redrawn by the generator
        assert np.abs(frames[5][top:bottom, left:right].astype(int) - before[top:bottom, left:right]).mean() > 30
    assert "are spoken but move no mouth" in captured.err
