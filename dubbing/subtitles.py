"""Timed cues from SubRip (.srt) and WebVTT (.vtt) files, read strictly.

Subtitle libraries (pysubs2, webvtt-py, srt) are lenient: they skip or guess at what they
cannot read. A dub made from a file with a broken cue would silently lose a sentence, so
this reader refuses such a file instead, in one line naming the line: a malformed
timestamp, a cue that ends before it starts, a cue with no text, cues that overlap, text
that is not UTF-8.

With ``speakers``, each cue's speaker is read too: a WebVTT voice span (<v Alice>) or a name
and a colon starting the cue (Alice: ...), which is then not part of the text spoken.
"""

import dataclasses
import itertools
import re
from pathlib import Path

from system.errors import UserError

_TIME = r"(?:(\d+):)?([0-5]\d):([0-5]\d)[,.](\d{3})"
_TIMING = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}(?:\s+.*)?$")
_TAGS = re.compile(r"<[^>]*>|\{\\[^}]*\}")  # <i>, <v Speaker>, <00:01.000>, {\an8}
_VOICE = re.compile(r"<v(?:\.[^\s>]*)?\s+([^>]*?)\s*>")  # <v Alice>, <v.loud Alice Smith>
# "Alice: ...", "Dr. Bo: ...", "- Jean-Luc: ..." (a dialogue dash): a name of letters, spaces and .'-
_LABEL = re.compile(r"(?:-\s*)?([^\W\d_](?:[^\W\d_]|[ .'\-]){0,39}?)\s*:(?:\s+|$)(.*)", re.DOTALL)


@dataclasses.dataclass(frozen=True)
class Cue:
    start: float  # seconds
    end: float
    text: str  # one line: the cue's lines joined by spaces, markup (and with speakers, the name) removed
    line: int  # where its timing line is in the file
    speaker: str = None  # who says it, when read with speakers and the cue names one


def read_cues(path, speakers=False):
    """The cues of an .srt or .vtt file, in time order; with ``speakers``, each with its speaker."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--subtitles file not found: {path}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[:error.start].count(b"\n") + 1
        raise UserError(f"{path} line {line}: not UTF-8 text (save the file as UTF-8)") from None
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    webvtt = lines[0].startswith("WEBVTT")
    if not webvtt and path.suffix.lower() == ".vtt":
        raise UserError(f"{path} line 1: a WebVTT file starts with WEBVTT")
    cues = [_cue(path, block, speakers) for block in _blocks(lines[1:] if webvtt else lines, 2 if webvtt else 1)]
    cues = [cue for cue in cues if cue is not None]
    if not cues:
        raise UserError(f"{path}: no cues found")
    for before, after in itertools.pairwise(cues):
        if after.start < before.end:
            raise UserError(f"{path} line {after.line}: this cue starts at {after.start:.3f} s, before the cue of "
                            f"line {before.line} ends ({before.end:.3f} s); cues must not overlap")
    return cues


def _blocks(lines, first_number):
    """Runs of non-blank lines, each as [(line number, text), ...]."""
    block = []
    for number, line in enumerate(lines, first_number):
        if line.strip():
            block.append((number, line))
        elif block:
            yield block
            block = []
    if block:
        yield block


def _cue(path, block, speakers=False):
    """A Cue from one block, or None for WebVTT's NOTE, STYLE and REGION blocks."""
    if block[0][1].startswith(("NOTE", "STYLE", "REGION")):
        return None
    timed = [i for i, (_, line) in enumerate(block) if "-->" in line]
    if not timed or timed[0] > 1:
        number = block[min(1, len(block) - 1)][0]
        raise UserError(f"{path} line {number}: expected a timing line 'HH:MM:SS,mmm --> HH:MM:SS,mmm', "
                        f"found {block[min(1, len(block) - 1)][1].strip()!r}")
    number, timing = block[timed[0]]
    match = _TIMING.match(timing)
    if not match:
        raise UserError(f"{path} line {number}: malformed timestamp {timing.strip()!r} "
                        "(expected HH:MM:SS,mmm --> HH:MM:SS,mmm)")
    start, end = _seconds(match.groups()[:4]), _seconds(match.groups()[4:])
    if end <= start:
        raise UserError(f"{path} line {number}: the cue ends ({end:.3f} s) before it starts ({start:.3f} s)")
    lines = [line for _, line in block[timed[0] + 1:]]
    text = " ".join(_TAGS.sub("", line).strip() for line in lines).strip()
    speaker = None
    if speakers:
        speaker, text = _speaker(path, number, lines, text)
    if not text:
        raise UserError(f"{path} line {number}: the cue has no text")
    return Cue(start, end, " ".join(text.split()), number, speaker)


def _speaker(path, number, lines, text):
    """(the speaker, the text without the name) of a cue: its voice span, else the name starting
    its first line. A cue in which two speakers talk is refused."""
    voices = list(dict.fromkeys(name for line in lines for name in _VOICE.findall(line) if name))
    if voices:
        _one_speaker(path, number, voices)
        return voices[0], text
    lines = [_TAGS.sub("", line).strip() for line in lines]
    labels = [_LABEL.fullmatch(line) for line in lines]
    if not labels[0]:
        later = [label.group(1).strip() for label in labels if label]
        if later:  # words of nobody named, then a name: two speakers
            _one_speaker(path, number, ["no one named", *later])
        return None, text
    names = list(dict.fromkeys(label.group(1).strip() for label in labels if label))
    _one_speaker(path, number, names)
    said = " ".join(label.group(2).strip() if label else line for label, line in zip(labels, lines))
    return names[0], said.strip()


def _one_speaker(path, number, names):
    if len(names) > 1:
        raise UserError(f"{path} line {number}: the cue has {len(names)} speakers ({', '.join(names)}); give each "
                        "its own cue, so that each face says its own words")


def _seconds(groups):
    hours, minutes, seconds, millis = (int(value or 0) for value in groups)
    return hours * 3600 + minutes * 60 + seconds + millis / 1000
