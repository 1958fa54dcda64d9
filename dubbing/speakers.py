"""A dialogue dubbed in one command: the subtitles' speakers, each given a face and a voice.

    --speaker_face Alice=120,80    Alice's cues move the face holding that pixel (X,Y as --pick_face)
    --speaker_voice Alice=es       and are spoken in that voice (the others in --voice)

Speakers are read from the subtitles (dubbing.subtitles): WebVTT voice spans (<v Alice>) and
cues starting with a name and a colon (Alice: ...). Cues of a speaker with no face are spoken
but move no mouth (one warning names them); a mapped speaker who never speaks is refused.
"""

import contextlib
import dataclasses
import re

from lipsync.face_tracks import parse_pick
from system.errors import UserError

UNNAMED = "no one named"  # how cues without a speaker are listed


@dataclasses.dataclass
class Speakers:
    """Who speaks with which face and which voice: {name: (x, y)} and {name: voice}."""

    faces: dict
    voices: dict

    @classmethod
    def from_flags(cls, speaker_face=(), speaker_voice=()):
        """From --speaker_face NAME=X,Y and --speaker_voice NAME=VOICE, each given any number of times."""
        faces, points = _mapping(speaker_face, "--speaker_face", "NAME=X,Y"), {}
        for name, point in faces.items():
            try:
                pick = parse_pick(point)
            except UserError:
                pick = None
            if not isinstance(pick, tuple):
                raise UserError(f"--speaker_face {name}={point}: give a pixel of the speaker's face, X,Y")
            if pick in points:
                raise UserError(f"--speaker_face {points[pick]}={faces[points[pick]]} and --speaker_face {name}={point} "
                                "give the same pixel: each speaker needs a face of their own")
            points[pick] = name
        return cls(faces, _mapping(speaker_voice, "--speaker_voice", "NAME=VOICE"))

    def __bool__(self):
        return bool(self.faces or self.voices)

    def voice(self, cue, default):
        return self.voices.get(cue.speaker, default)

    def check(self, cues, path):
        """Refuse a mapped speaker who never speaks in ``cues`` (of ``path``); returns the warning
        for cues whose speaker has no face (None when every cue has one, or no face is mapped)."""
        spoken = list(dict.fromkeys(cue.speaker for cue in cues))
        named = [name for name in spoken if name is not None]
        for flag, mapping in (("--speaker_face", self.faces), ("--speaker_voice", self.voices)):
            for name, value in mapping.items():
                if name not in spoken:
                    found = f"its speakers: {', '.join(named)}" if named else "it names no speaker"
                    raise UserError(f"{flag} {name}={value}: {name} never speaks in {path} ({found}; <v {name}> in "
                                    f"WebVTT, '{name}: ...' at the start of a cue)")
        if not self.faces:
            return None
        faceless = {}
        for cue in cues:
            if cue.speaker not in self.faces:
                faceless[cue.speaker] = faceless.get(cue.speaker, 0) + 1
        if not faceless:
            return None
        listed = ", ".join(f"{name or UNNAMED} ({count} {'cue' if count == 1 else 'cues'})"
                           for name, count in faceless.items())
        return f"cues of {listed} in {path} are spoken but move no mouth: no --speaker_face NAME=X,Y for them"

    @contextlib.contextmanager
    def naming_faces(self):
        """Lip-sync's one-line errors about a face point (--pick_face X,Y) name the speaker's
        --speaker_face NAME=X,Y instead, as the user wrote it."""
        try:
            yield
        except UserError as error:
            message = str(error)
            for name, point in self.faces.items():
                x, y = parse_pick(point)
                message = re.sub(rf"--pick_face {x},{y}\b", lambda _, given=f"--speaker_face {name}={point}": given,
                                 message)
            if message == str(error):
                raise
            raise UserError(message) from error

    def with_faces(self, cues):
        """The speakers with a face, in the order they first speak."""
        return [name for name in dict.fromkeys(cue.speaker for cue in cues) if name in self.faces]


def _mapping(values, flag, form):
    """{name: value} from NAME=VALUE strings; one line for a malformed or repeated one."""
    mapping = {}
    for text in values or ():
        name, equals, value = str(text).partition("=")
        name, value = name.strip(), value.strip()
        if not equals or not name or not value:
            raise UserError(f"{flag} takes {form}, not {text!r}")
        if name in mapping:
            raise UserError(f"{flag} names {name} twice ({name}={mapping[name]}, {name}={value})")
        mapping[name] = value
    return mapping
