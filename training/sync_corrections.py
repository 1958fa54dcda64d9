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

from system.errors import UserError
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
    early is delayed, silence filling its start. Frames whose sound is that silence have no
    true audio: ``usable_frames`` says which."""
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
    brought in), for a clip of ``frame_count`` frames."""
    return range(max(0, offset), frame_count + min(0, offset))
