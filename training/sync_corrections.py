"""Per-clip audio offsets of a preprocessed dataset, measured by ``sync_audit.py --correct``,
and the training audio shifted back into sync by them.

The file is ``<data_root>/sync_corrections.csv``, columns ``clip`` (``<video>/<clip>`` as in the
filelists), ``offset`` (whole video frames, LSE's sign: audio that comes d frames late gives
-d) and ``confidence`` (the audit's, median minus minimum distance). The preprocessed files
are never rewritten: the training data reads the clip's ``audio.wav`` and shifts the samples
as it loads them, so deleting this file undoes the correction.
"""

import math
from pathlib import Path

import numpy as np

from models.checkpoint import file_digest
from system.errors import UserError, check_number
from system.reports import read_rows, write_rows

FILE_NAME = "sync_corrections.csv"
COLUMNS = ("clip", "offset", "confidence")


def corrections_path(data_root):
    return Path(data_root) / FILE_NAME


def write_corrections(data_root, rows):
    """Write ``rows`` ({clip, offset, confidence}, clips relative to ``data_root``) atomically."""
    write_rows(corrections_path(data_root), [{name: row[name] for name in COLUMNS} for row in rows])


def read_corrections(data_root):
    """{clip: (offset in frames, confidence)} from ``data_root``'s corrections file; {} when
    there is none. A malformed file is one line naming it and the row."""
    path = corrections_path(data_root)
    if not path.is_file():
        return {}
    try:
        rows = read_rows(path)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise UserError(f"{path} cannot be read: {error}") from None
    corrections = {}
    for number, row in enumerate(rows, 2):  # the header is line 1
        try:
            offset, confidence = int(row["offset"]), float(row["confidence"])
            clip = row["clip"]
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{path}, line {number}: needs the columns {', '.join(COLUMNS)} "
                            "(a whole offset, a number confidence)") from None
        if not math.isfinite(confidence):
            raise UserError(f"{path}, line {number}: confidence {row['confidence']!r} is not a number")
        corrections[clip] = (offset, confidence)
    return corrections


def shift_samples(offset, sample_rate, fps):
    """How many samples ``offset`` frames are (whole frames at rates like 16 kHz and 25 fps)."""
    return round(offset * sample_rate / fps)


def corrected_wav(wav, offset, sample_rate, fps):
    """``wav`` moved by ``offset`` frames back into sync, the same length: audio that came d
    frames late (offset -d) starts d frames sooner, silence filling its end; audio that came
    early is delayed, silence filling its start. The mel frames that touch that silence hold no
    true audio: training.dataset.own_mel_frames says which."""
    samples = shift_samples(offset, sample_rate, fps)
    if samples == 0:
        return wav
    shifted = np.zeros_like(wav)
    if samples < 0:  # late: drop its first samples
        shifted[:len(wav) + samples] = wav[-samples:]
    else:  # early: delay it
        shifted[samples:] = wav[:len(wav) - samples]
    return shifted


def usable_frames(offset, frame_count):
    """range of the frames whose corrected audio is the clip's own (not the silence the shift
    brought in), for a clip of ``frame_count`` frames: the bound in frames; the mel frames that
    training draws (training.dataset.own_mel_frames) keep a margin for the STFT's window."""
    return range(max(0, offset), frame_count + min(0, offset))


def clip_offsets(clips):
    """{clip folder: offset} of the corrected ``clips`` (folders ``<data_root>/<video>/<clip>``),
    each from its data root's corrections file; clips it does not list, or lists at 0, are left out."""
    files, offsets = {}, {}
    for clip in map(Path, clips):
        root = clip.parent.parent
        if root not in files:
            files[root] = read_corrections(root)
        offset = files[root].get(f"{clip.parent.name}/{clip.name}", (0, None))[0]
        if offset:
            offsets[clip] = offset
    return offsets


def fingerprint(data_root):
    """(path, sha256) of ``data_root``'s corrections file, or (None, None) without one: what a
    run's configuration records, so that a repeat or a resume can tell it changed."""
    path = corrections_path(data_root)
    if not path.is_file():
        return None, None
    return str(path), file_digest(path)


def summary(data_root):
    """"sync corrections: <path> shifts the audio of 37 of its 240 clips (delete it to undo)", or
    None without a corrections file."""
    if not corrections_path(data_root).is_file():
        return None
    corrections = read_corrections(data_root)
    shifted = sum(offset != 0 for offset, _ in corrections.values())
    return (f"sync corrections: {corrections_path(data_root)} shifts the audio of {shifted} of its "
            f"{len(corrections)} clips (delete it to undo)")


def check_min_confidence(data_root, min_confidence):
    """--min_confidence must be a number, 0 or more, and needs the confidences of ``data_root``'s
    corrections file: without it, one line."""
    check_number("--min_confidence", min_confidence, 0)
    path = corrections_path(data_root)
    if not path.is_file():
        raise UserError(f"--min_confidence {min_confidence:g} needs the confidences of {path}, which does not "
                        f"exist: run sync_audit.py --data_root {data_root} --correct first")


def confident_clips(data_root, clips, min_confidence):
    """(kept, left out): ``clips`` (``<video>/<clip>`` names) split by the rule of --min_confidence:
    a clip the corrections file gives a confidence below ``min_confidence`` is left out; clips it
    does not list are kept. No corrections file, or no clip left, is one line."""
    check_min_confidence(data_root, min_confidence)
    low = {clip for clip, (_, confidence) in read_corrections(data_root).items() if confidence < min_confidence}
    kept, left_out = [clip for clip in clips if clip not in low], [clip for clip in clips if clip in low]
    if not kept:
        raise UserError(f"--min_confidence {min_confidence:g} leaves out all {len(clips)} clips "
                        f"({corrections_path(data_root)} gives none a confidence that high); lower it")
    return kept, left_out


def left_out_line(data_root, left_out, min_confidence, shown=5):
    """The line that names the clips --min_confidence left out: the first few and their number."""
    names = ", ".join(left_out[:shown]) + (", ..." if len(left_out) > shown else "")
    return (f"left out {len(left_out)} clip(s) whose sync confidence in {corrections_path(data_root)} is below "
            f"{min_confidence:g}" + (f": {names}" if left_out else ""))
