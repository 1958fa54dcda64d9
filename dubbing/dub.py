"""Text or timed subtitles -> synthesised speech (over the original soundtrack, muted or
ducked) -> a lip-synced video of --face, marked as synthetic in picture and in sound."""

import dataclasses
from pathlib import Path

import numpy as np
from scipy.io import wavfile

import audio
import media
from atomic_write import check_writable, scratch_file
from dubbing.mixing import ducked
from dubbing.speech import check_settings, speech_engine
from dubbing.subtitles import read_cues
from dubbing.timeline import place_speech
from errors import UserError
from lipsync import lip_sync


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

    @classmethod
    def from_args(cls, args):
        return cls(**{field.name: getattr(args, field.name) for field in dataclasses.fields(cls)})

    def check(self, face):
        given = [flag for flag in ("text", "text_file", "subtitles") if getattr(self, flag) is not None]
        if len(given) != 1:
            raise UserError("give one of --text, --text_file and --subtitles")
        check_settings(self.speech_rate, self.pitch)
        if self.max_speedup < 1:
            raise UserError(f"--max_speedup {self.max_speedup}: give 1 (never speed up) or more")
        if self.original_audio not in ("mute", "duck"):
            raise UserError(f"--original_audio must be mute or duck, not {self.original_audio!r}")
        if self.duck_db < 0:
            raise UserError(f"--duck_db {self.duck_db}: give how many dB to lower the original by (0 or more)")
        if self.original_audio == "duck" and (media.is_image(face) or not _has_audio(face)):
            raise UserError(f"--original_audio duck: {face} has no soundtrack to keep; use --original_audio mute")


def dub(speaking, options, notes=print):
    """Synthesise, mix and lip-sync as ``speaking`` and the lip-sync ``options`` (whose
    ``audio`` is ignored) say; returns the lip-sync Summary. Cue timing notes go to ``notes``."""
    options.check()
    speaking.check(options.face)
    check_writable(Path(options.outfile).parent)  # before the speech is made and written there
    cues = read_cues(speaking.subtitles) if speaking.subtitles else None
    text = None if cues else _text(speaking)
    engine = speech_engine(speaking.engine)

    def say(words):
        return engine.synthesize(words, speaking.voice, speaking.speech_rate, speaking.pitch)

    if cues:
        track, rate, placed = place_speech(cues, [say(cue.text) for cue in cues], speaking.max_speedup)
        for placement in placed:
            for line in placement.notes(speaking.max_speedup):
                notes(line)
        spans = [(p.start, p.end) for p in placed]
        subtitles = tuple((p.start, max(p.cue.end, p.end), p.cue.text) for p in placed)
    else:
        speech = say(text)
        track, rate, spans, subtitles = speech.samples, speech.sample_rate, [(0.0, speech.seconds)], ()
    if speaking.original_audio == "duck":
        track = ducked(audio.load_wav(options.face, rate), track, spans, rate, speaking.duck_db)
    # Beside the output, not in tempfile's folder: a killed run's speech is removed by the next.
    with scratch_file(Path(options.outfile).with_suffix(".speech.wav")) as wav:
        wavfile.write(wav, rate, np.asarray(track, np.float32))
        synthesised_by = (engine.digital_source_type, engine.synthesiser)
        return lip_sync(dataclasses.replace(options, audio=wav, tool="dub.py", synthetic_speech=synthesised_by,
                                            subtitles=subtitles if speaking.subtitle_track else ()))


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
    with media.open_media(path, "video") as container:
        return bool(container.streams.audio)
