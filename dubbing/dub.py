"""Text or timed subtitles -> synthesised speech (over the original soundtrack, muted or
ducked) -> a lip-synced video of --face, marked as synthetic in picture and in sound."""

import contextlib
import dataclasses
import math
from pathlib import Path

import librosa
import numpy as np
from tqdm import tqdm

import audio
from dubbing.engines import speech_engine
from dubbing.mixing import Mix
from dubbing.speakers import Speakers
from dubbing.speech import check_finite, check_settings
from dubbing.subtitles import read_cues
from dubbing.timeline import far_past_the_video, place_speech
from media.wav_writer import float_wav
from lipsync import lip_sync
from lipsync.frames import FrameSource
from media import containers
from system.atomic_write import check_output, check_writable, scratch_file
from system.errors import UserError


@dataclasses.dataclass
class Speaking:
    """What dub.py's speech flags ask for."""

    text: str = None
    text_file: str = None
    subtitles: str = None
    engine: str = "espeak"
    voice: str = "en"
    speech_rate: float = 1.0
    pitch: float = 50
    max_speedup: float = 1.3
    original_audio: str = "mute"  # mute | duck
    duck_db: float = 12.0
    subtitle_track: bool = True
    speaker_face: tuple = ()  # NAME=X,Y: the face a speaker of --subtitles moves (dubbing/speakers.py)
    speaker_voice: tuple = ()  # NAME=VOICE: the voice a speaker is given (the others: --voice)

    @classmethod
    def from_args(cls, args):
        return cls(**{field.name: getattr(args, field.name) for field in dataclasses.fields(cls)
                      if getattr(args, field.name, None) is not None})

    @property
    def speakers(self):
        return Speakers.from_flags(self.speaker_face, self.speaker_voice)

    def check(self, face):
        given = [flag for flag in ("text", "text_file", "subtitles") if getattr(self, flag) is not None]
        if len(given) != 1:
            raise UserError("give one of --text, --text_file and --subtitles")
        check_settings(self.speech_rate, self.pitch)
        # Written so that NaN fails too (every comparison with it is false).
        if not 1 <= self.max_speedup < math.inf:
            raise UserError(f"--max_speedup {self.max_speedup}: give 1 (never speed up) or more, a finite number")
        if self.original_audio not in ("mute", "duck"):
            raise UserError(f"--original_audio must be mute or duck, not {self.original_audio!r}")
        if not 0 <= self.duck_db < math.inf:
            raise UserError(f"--duck_db {self.duck_db}: give how many dB to lower the original by (0 or more, "
                            "a finite number)")
        if self.original_audio == "duck" and (containers.is_image(face) or not _has_audio(face)):
            raise UserError(f"--original_audio duck: {face} has no soundtrack to keep; use --original_audio mute")
        if self.speakers and self.subtitles is None:
            raise UserError("--speaker_face and --speaker_voice name the speakers of --subtitles: give --subtitles")


def dub(speaking, options, notes=print):
    """Synthesise, mix and lip-sync as ``speaking`` and the lip-sync ``options`` (whose
    ``audio`` is ignored) say; returns the lip-sync Summary. Cue timing notes go to ``notes``.

    With speakers given faces (--speaker_face), each such speaker's speech alone drives their
    face, and the output's sound is everyone's speech (over the original, as asked)."""
    if options.pick_faces:
        raise UserError("dub.py takes one --pick_face; give each speaker's face with --speaker_face NAME=X,Y")
    options.check()
    speaking.check(options.face)
    check_output(options.outfile, "--outfile", {"--subtitles": speaking.subtitles, "--text_file": speaking.text_file})
    check_writable(Path(options.outfile).parent)  # before the speech is made and written there
    speakers = speaking.speakers
    cues = read_cues(speaking.subtitles, speakers=bool(speakers)) if speaking.subtitles else None
    text = None if cues else _text(speaking)
    faced, faceless = _faced(speakers, cues, speaking, options) if speakers else ([], None)
    if cues and (warning := far_past_the_video(cues, _video_seconds(options.face), speaking.subtitles)):
        notes(warning)
    engine = speech_engine(speaking.engine)
    engine.check_voice(speaking.voice)  # every voice before any speech is made
    for name, voice in speakers.voices.items():
        engine.check_voice(voice, f"--speaker_voice {name}={voice}")
    if faceless:  # once every check has passed
        notes(faceless)
    rate = engine.sample_rate
    original = _soundtrack(options.face, rate) if speaking.original_audio == "duck" else None

    def say(words, where, voice=speaking.voice):
        speech = engine.synthesize(words, voice, speaking.speech_rate, speaking.pitch)
        return check_finite(speech, engine, where)

    outfile = Path(options.outfile)
    with contextlib.ExitStack() as scratch:
        # Beside the output, not in tempfile's folder: a killed run's speech is removed by the next.
        wav = scratch.enter_context(scratch_file(outfile.with_suffix(".speech.wav")))
        own = {name: scratch.enter_context(scratch_file(outfile.with_suffix(f".speaker{n}.wav")))
               for n, name in enumerate(faced, 1)}
        with contextlib.ExitStack() as writing:
            mix = Mix(writing.enter_context(float_wav(wav, rate)), rate, original, speaking.duck_db)
            tracks = {name: Mix(writing.enter_context(float_wav(path, rate)), rate) for name, path in own.items()}
            subtitles = _speak_cues(cues, say, mix, tracks, speaking, speakers, notes, options.progress) if cues \
                else _speak_text(text, say, mix, speaking)
        synthesised_by = (engine.digital_source_type, engine.synthesiser)
        with speakers.naming_faces():
            return lip_sync(dataclasses.replace(options, **_voices(wav, own, speakers), tool="dub.py",
                                                synthetic_speech=synthesised_by,
                                                subtitles=subtitles if speaking.subtitle_track else ()))


def _faced(speakers, cues, speaking, options):
    """(the speakers given faces, in the order they first speak; the warning naming the cues that
    move no face, or None), checked before any speech is made: each speaks, their faces are in
    the frame and apart."""
    if speakers.faces and options.pick_face != "best":
        raise UserError(f"--pick_face {options.pick_face} and --speaker_face both choose faces: with speakers, give "
                        "each one's face with --speaker_face NAME=X,Y")
    warning = speakers.check(cues, speaking.subtitles)
    faced = speakers.with_faces(cues)
    if faced:  # the points checked against the frame (and against the --box given) now, not after the speech
        with speakers.naming_faces():
            planned = dataclasses.replace(options, **_voices("", dict.fromkeys(faced, ""), speakers))
            planned.check_values()
            FrameSource(planned)
    return faced, warning


def _voices(speech, own, speakers):
    """The lip-sync settings for the speech: one voice (--audio), or one per speaker with a face
    ({name: their speech}) driving it, everyone's ``speech`` being the output's sound."""
    if not own:
        return {"audio": speech}
    names = list(own)
    if len(names) == 1:
        return {"audio": own[names[0]], "pick_face": speakers.faces[names[0]], "soundtrack": speech}
    return {"audios": list(own.values()), "pick_faces": [speakers.faces[name] for name in names], "soundtrack": speech,
            "voice_names": names}


def _speak_cues(cues, say, mix, tracks, speaking, speakers, notes, progress=True):
    """Each cue spoken from its start time into ``mix``, and into its speaker's own track when
    ``tracks`` ({name: Mix}) has one (a bar counts them); returns the subtitle track's cues."""
    placing = iter(cues)  # place_speech adds each cue's speech once, in cue order

    def add(start, samples):
        mix.add(start, samples)
        if (track := tracks.get(next(placing).speaker)) is not None:
            track.add(start, samples)

    with tqdm(cues, desc="speech", unit="cue", disable=not progress, dynamic_ncols=True) as counted:
        speeches = (say(cue.text, f"the cue at line {cue.line} of {speaking.subtitles}",
                        speakers.voice(cue, speaking.voice)) for cue in counted)  # one at a time
        placed = place_speech(cues, speeches, add, speaking.max_speedup)
    length = mix.finish(until=cues[-1].end)
    for track in tracks.values():  # every speaker's track as long as the whole
        track.finish(until=length / mix.sample_rate)
    for placement in placed:
        for line in placement.notes(speaking.max_speedup):
            notes(line)
    return tuple((p.start, max(p.cue.end, p.end), p.cue.text) for p in placed)


def _speak_text(text, say, mix, speaking):
    """The text spoken whole into ``mix``; no subtitle track."""
    where = "--text" if speaking.text is not None else f"--text_file {speaking.text_file}"
    mix.add(0.0, say(text, where).samples)
    mix.finish()
    return ()


def _soundtrack(face, sample_rate):
    """The face video's soundtrack at ``sample_rate`` (as blocks of samples, for ``Mix``), refused
    in one line naming the file if it holds NaN or infinite samples: checked at its own rate, as
    resampling fails on them."""
    native = audio.native_sample_rate(face)
    samples = audio.check_finite(audio.load_wav(face, native), face)
    if native != sample_rate:
        samples = np.ascontiguousarray(librosa.resample(samples, orig_sr=native, target_sr=sample_rate), np.float32)
    return [samples]


def _video_seconds(face):
    """How long the face video lasts (0 for a still)."""
    if containers.is_image(face):
        return 0.0
    info = containers.probe_video(face)
    return info.frame_count / info.fps


def _text(speaking):
    if speaking.text is not None:
        text = speaking.text
    else:
        path = Path(speaking.text_file)
        if not path.is_file():
            raise UserError(f"--text_file not found: {path}")
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            raise UserError(f"--text_file {path}: not UTF-8 text (save the file as UTF-8)") from None
    if not text.strip():
        raise UserError("--text is empty" if speaking.text is not None else f"--text_file {speaking.text_file} is empty")
    return " ".join(text.split())


def _has_audio(path):
    with containers.open_media(path, "video") as container:
        return bool(container.streams.audio)
