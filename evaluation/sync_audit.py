"""The sync audit of a preprocessed dataset: each clip's audio offset and how sure it is.

Each clip (``<video>/<clip>/`` face crops and ``audio.wav``, as preprocess.py writes them) is
scored as LSE scores a video: for each audio offset of -max..+max frames the distance between
its lip and audio features is averaged over the clip's 5-frame windows; the offset is the one
at the smallest average (LSE's sign: audio that comes d frames late gives -d) and the
confidence is the median of the averages minus that minimum (evaluation.metrics.lse computes
both, for both networks).

Two networks can score: LSE's SyncNet (syncnet_v2.model), which sees the crops and MFCCs as it
sees a video's frames, and the training expert (lipsync_expert.pth, or a checkpoint of
color_syncnet_train.py), which sees what it was trained on: the lower halves of 5 crops resized
to its face size (96 pixels as released; the size its checkpoint records) beside the 16 mel steps of the first frame. The expert's distance is 1 - the
cosine of its embeddings: the cosine is what it was trained to push to 1 in sync and to 0 out
of sync. At each offset the average is over the windows whose audio is there (the offset does not
take it past either end of the clip): LSE instead counts a missing audio feature as a zero
vector, which pulls the offsets of short clips towards 0.

``SyncAudit`` runs the clips of one shard into its report, resuming after a kill; ``summary``,
``draw_histogram`` and ``correct`` read a whole report.
"""

import dataclasses
import sys
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

import audio
from evaluation.metrics.lse import AUDIO_RATE, SAMPLES_PER_FRAME, LSEScorer, sync_score
from hparams import hparams
from media.containers import read_image, visible
from models import SyncNet_color
from models.checkpoint import (
    CheckpointError,
    file_digest,
    identify_network,
    load_network,
    read_checkpoint,
)
from models.inputs import MEL_STEP, WINDOW, stack_lower_halves
from system.atomic_write import atomic_output
from system.errors import UserError
from system.reports import read_rows, write_rows
from training.dataset import crop_audio_window, read_filelist, window_ids
from training.preprocessing import DONE_MARKER, frame_ids, is_done
from training.sync_corrections import corrections_path, write_corrections

MAX_OFFSET = 15  # frames, as LSE's --vshift
COLUMNS = ("clip", "offset", "confidence", "min_distance", "frames", "windows", "syncnet_sha256", "max_offset", "error")
SAVE_EVERY = 30.0  # seconds between rewrites of the report while the run goes on: what a kill can lose
EXPERT = "the expert lip-sync SyncNet"
LSE = "LSE's SyncNet"


# --- the networks ------------------------------------------------------------------------------

def network_kind(path):
    """EXPERT or LSE, from what the checkpoint ``path`` holds; any other file is one line."""
    found = identify_network(read_checkpoint(path)["state_dict"])
    with torch.device("meta"):  # the expert's keys, without building its weights
        expert = identify_network(SyncNet_color().state_dict())
    if found == expert:
        return EXPERT
    if found is not None and "syncnet_v2.model" in found:
        return LSE
    held = f"is a checkpoint of {found}" if found else "holds no network the sync audit knows"
    raise CheckpointError(f"{path} {held}: the audit needs the expert lip-sync SyncNet (lipsync_expert.pth, or a "
                          "checkpoint of color_syncnet_train.py) or LSE's SyncNet (syncnet_v2.model)")


def load_auditor(path, kind, device, batch_size=32, max_offset=MAX_OFFSET):
    """The clip scorer for the checkpoint ``path`` of ``network_kind`` ``kind``: ExpertAuditor or LSEAuditor."""
    return (ExpertAuditor if kind == EXPERT else LSEAuditor)(path, device, batch_size, max_offset)


def read_crops(folder, ids, size=None):
    """The face crops ``ids`` of ``folder`` as BGR uint8 images (resized to ``size``, when given)."""
    crops = [read_image(Path(folder) / f"{frame}.jpg") for frame in ids]
    return [cv2.resize(crop, (size, size)) for crop in crops] if size else crops


def clip_audio(folder, sample_rate):
    """The clip's audio.wav as float samples at ``sample_rate``; a clip without one is one line."""
    path = Path(folder) / "audio.wav"
    if not path.is_file():
        raise UserError("no audio.wav")
    return audio.check_finite(audio.load_wav(path, sample_rate), path)


class ExpertAuditor:
    """The training expert (SyncNet_color) scoring clips as it was trained to see them."""

    kind = EXPERT

    def __init__(self, path, device, batch_size, max_offset):
        self.device, self.batch_size, self.max_offset = torch.device(device), batch_size, max_offset
        self.model = load_network(SyncNet_color, path, self.device)[0].eval()  # at the face size it records

    @torch.no_grad()
    def score(self, folder):
        """(SyncScore, face crops) of a clip folder."""
        ids = frame_ids(folder)
        starts = [start for start in ids if window_ids(ids, start)]
        if not starts:
            raise UserError(f"too short to audit: {len(ids)} face crops, never {WINDOW} in a row")
        mel = audio.melspectrogram(clip_audio(folder, hparams.sample_rate)).T.astype(np.float32)  # as training reads it
        crops = dict(zip(ids, read_crops(folder, ids, self.model.face_size)))
        lip = self._lip_features(crops, starts)
        first = starts[0] - self.max_offset  # the audio windows any offset of any window reaches
        aud, usable = self._audio_features(mel, range(first, starts[-1] + self.max_offset + 1))
        shifts = torch.arange(2 * self.max_offset + 1)
        columns = (torch.tensor(starts)[:, None] - first - self.max_offset + shifts[None, :]).to(lip.device)
        counted = usable[columns].float()  # (windows, offsets): whether the window's audio is there
        if not counted.sum(0).all():
            raise UserError(f"too short to audit at --max_offset {self.max_offset}: {len(starts)} windows of {WINDOW} "
                            f"frames with audio, more than {self.max_offset} needed")
        cosines = (lip @ aud.T).gather(1, columns)
        distances = ((1 - cosines) * counted).sum(0) / counted.sum(0)  # per offset -max..+max
        score = sync_score(distances, self.max_offset)
        score.windows = len(starts)
        return score, len(ids)

    def _lip_features(self, crops, starts):
        windows = [stack_lower_halves(torch.from_numpy(np.stack([crops[frame] for frame in range(start, start + WINDOW)]))
                                      .permute(3, 0, 1, 2).float() / 255.0) for start in starts]
        return self._embed(self.model.face_encoder, windows)

    def _audio_features(self, mel, positions):
        """(embeddings, whether there is one) of the audio windows at frame ``positions``: a
        window that runs off the audio has none (zeros)."""
        windows = [crop_audio_window(mel, position) if position >= 0 else mel[:0] for position in positions]
        usable = torch.tensor([len(window) == MEL_STEP for window in windows], device=self.device)
        features = torch.zeros(len(windows), 512, device=self.device)
        chunks = [torch.from_numpy(window.T.copy()).unsqueeze(0) for window in windows if len(window) == MEL_STEP]
        if chunks:
            features[usable] = self._embed(self.model.audio_encoder, chunks)
        return features, usable

    def _embed(self, encoder, inputs):
        """L2-normalised embeddings of ``inputs``, in batches, as SyncNet_color.forward makes them."""
        out = [encoder(torch.stack(inputs[at:at + self.batch_size]).to(self.device)).flatten(1)
               for at in range(0, len(inputs), self.batch_size)]
        return F.normalize(torch.cat(out).float(), p=2, dim=1)


class LSEAuditor:
    """LSE's SyncNet scoring a clip's face crops and audio as it scores a video's frames."""

    kind = LSE

    def __init__(self, path, device, batch_size, max_offset):
        self.scorer = LSEScorer(path, device, batch_size, max_offset)

    def score(self, folder):
        """(SyncScore, face crops) of a clip folder: the longest run of consecutive crops, with
        the audio from its first frame on (LSE reads an unbroken video)."""
        ids = frame_ids(folder)
        run = longest_run(ids)
        wav = clip_audio(folder, AUDIO_RATE)[run[0] * SAMPLES_PER_FRAME:] if run else np.zeros(0, np.float32)
        return self.scorer.score(read_crops(folder, run), wav), len(ids)


def longest_run(ids):
    """The longest run of consecutive numbers in the sorted ``ids`` (the first of equals)."""
    best, start = [], 0
    for at in range(1, len(ids) + 1):
        if at == len(ids) or ids[at] != ids[at - 1] + 1:
            if at - start > len(best):
                best = ids[start:at]
            start = at
    return list(best)


# --- the clips and the run -----------------------------------------------------------------------

def list_clips(data_root, filelist=None):
    """``<video>/<clip>`` names to audit: those ``filelist`` names, or every clip folder (face
    crops or audio.wav) under ``data_root``, hidden ones left out."""
    root = Path(data_root)
    if filelist is not None:
        filelist = Path(filelist)
        if filelist.suffix != ".txt":
            raise UserError(f"--filelist {filelist}: expected a .txt filelist (one <video>/<clip> a line)")
        return sorted(path.relative_to(root).as_posix() for path in read_filelist(filelist.parent, filelist.stem, root))
    folders = visible(sorted(path for path in root.glob("*/*") if path.is_dir()), root)
    return [folder.relative_to(root).as_posix() for folder in folders
            if (folder / "audio.wav").exists() or frame_ids(folder)]


@dataclasses.dataclass
class SyncAudit:
    """One run of the audit: ``plan`` it, ``run`` it over its clips into its report."""

    root: Path
    clips: list  # this shard's
    report: Path  # this shard's report
    syncnet: str  # the checkpoint's digest, in each row: a report of another checkpoint is not resumed
    max_offset: int
    rows: dict  # clip -> row, those of an earlier run kept
    marked: bool = False  # whether preprocess.py marks finished clips (the reference's script does not)

    @classmethod
    def plan(cls, root, clips, report, checkpoint, max_offset):
        """The run of ``clips`` into ``report`` (this shard's), keeping the rows an earlier run of
        the same checkpoint and offsets scored there (``report`` is checked as an output by the caller)."""
        syncnet = file_digest(checkpoint)[:16]
        rows = {}
        if Path(report).is_file():
            for row in read_rows(report):
                if set(COLUMNS) - set(row):
                    raise UserError(f"--report {report} is not a sync audit's report (no column "
                                    f"{sorted(set(COLUMNS) - set(row))[0]}); name another file")
                if (row["syncnet_sha256"], str(row["max_offset"])) != (syncnet, str(max_offset)):
                    raise UserError(f"--report {report} holds an audit by another checkpoint or --max_offset; "
                                    "remove it or name another --report")
                if row["clip"] in clips and not row["error"]:
                    rows[row["clip"]] = row
        marked = any(Path(root).glob(f"*/*/{DONE_MARKER}"))
        return cls(Path(root), list(clips), Path(report), syncnet, max_offset, rows, marked)

    def run(self, auditor, progress=True):
        """Score every clip not yet in the report; the report is rewritten every SAVE_EVERY
        seconds and at the end, however the run ends. Returns the rows, in clip order."""
        todo = [clip for clip in self.clips if clip not in self.rows]
        saved = time.monotonic()
        try:
            for clip in tqdm(todo, desc="sync audit", unit="clip", disable=not progress):
                self.rows[clip] = self._scored(auditor, clip)
                if time.monotonic() - saved > SAVE_EVERY:
                    self.save()
                    saved = time.monotonic()
        finally:
            self.save()
        return self.table()

    def _scored(self, auditor, clip):
        folder = self.root / clip
        row = {**dict.fromkeys(COLUMNS, ""), "clip": clip, "syncnet_sha256": self.syncnet, "max_offset": self.max_offset}
        try:
            if self.marked and not is_done(folder):
                raise UserError("not finished by preprocess.py (no done marker, or fewer crops than it counts)")
            score, frames = auditor.score(folder)
        except UserError as error:
            tqdm.write(f"{clip}: skipped: {error}", file=sys.stderr)
            return {**row, "error": str(error)}
        return {**row, "offset": score.offset, "confidence": round(score.confidence, 6),
                "min_distance": round(score.min_distance, 6), "frames": frames, "windows": score.windows}

    def table(self):
        return [self.rows[clip] for clip in self.clips if clip in self.rows]

    def save(self):
        if self.rows:
            write_rows(self.report, self.table())


# --- reading a whole report ------------------------------------------------------------------------

def scored(rows):
    return [row for row in rows if not row["error"]]


def summary(rows, min_confidence=None):
    """The lines that say how a report's clips stand: in sync, shifted by how much, unsure, failed."""
    good = scored(rows)
    offsets = Counter(int(row["offset"]) for row in good)
    lines = [f"{len(good)} of {len(rows)} clips scored"]
    if good:
        share = 100 * offsets[0] / len(good)
        near = sum(count for offset, count in offsets.items() if abs(offset) <= 1)
        lines += [f"in sync (offset 0): {offsets[0]} clips ({share:.1f} %); within +-1 frame: {near}; "
                  f"shifted by 2 frames or more: {len(good) - near}",
                  "offset (frames; -d: the audio comes d frames late)  clips"]
        lines += [f"{offset:>+6d}  {count}" for offset, count in sorted(offsets.items())]
        confidences = sorted(float(row["confidence"]) for row in good)
        lines.append(f"confidence: median {np.median(confidences):.3f}, lowest {confidences[0]:.3f}")
        if min_confidence is not None:
            low = sum(confidence < min_confidence for confidence in confidences)
            lines.append(f"below --min_confidence {min_confidence:g}: {low} clips")
    failed = len(rows) - len(good)
    if failed:
        lines.append(f"failed: {failed} clips (the error column says why)")
    return lines


def draw_histogram(rows, path, heading, min_confidence=None):
    """A PNG of the offsets and the confidences of a report's scored clips, written atomically."""
    import matplotlib
    matplotlib.use("Agg")  # headless: no display needed
    import matplotlib.pyplot as plt

    good = scored(rows)
    offsets = Counter(int(row["offset"]) for row in good)
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    left.bar(list(offsets), list(offsets.values()), width=0.8)
    left.set(title="offset (frames; -d: audio d frames late)", xlabel="offset", ylabel="clips")
    right.hist([float(row["confidence"]) for row in good], bins=30)
    if min_confidence is not None:
        right.axvline(min_confidence, color="red", ls="--", label=f"--min_confidence {min_confidence:g}")
        right.legend(fontsize="small")
    right.set(title="confidence (median - minimum distance)", xlabel="confidence", ylabel="clips")
    for axis in (left, right):
        axis.grid(alpha=0.3)
    figure.suptitle(heading)
    figure.tight_layout()
    with atomic_output(path) as temporary:
        figure.savefig(temporary, format="png", dpi=100)
    plt.close(figure)


def correct(data_root, rows):
    """Write ``<data_root>/sync_corrections.csv`` from a whole report's scored clips; returns its path."""
    write_corrections(data_root, [{"clip": row["clip"], "offset": int(row["offset"]),
                                   "confidence": float(row["confidence"])} for row in scored(rows)])
    return corrections_path(data_root)
