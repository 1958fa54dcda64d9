"""--pick_face auto: which face is speaking, at each moment, in the input video's own audio.

The expert SyncNet (--syncnet_checkpoint_path) scores each face track's five-frame windows
(the lower halves of its crops at the expert's face size, cut as the generator's are) against the mel window of
the video's own audio at the same frames: the face that says what is heard scores higher.
Each frame's score is the mean of the windows that hold it, averaged again over
SMOOTHING_SECONDS around the frame (the video is whole: the choice may look ahead). Where the
video's audio is quiet (within 10 dB of its own noise floor: ``quiet_level``) nobody speaks
and no face is edited; elsewhere the best-scoring face is chosen, and the choice moves to another face only
when that one leads by SWITCH_MARGIN (hysteresis: the mouth does not flicker between faces).
"""

import itertools
from collections import deque

import numpy as np

import audio
from face_detection.boxes import has_area, pad_and_clip
from hparams import hparams
from lipsync.compose import face_crop
from lipsync.stream_audio import SILENCE_DB, Utterance
from lipsync.progress import frame_bar
from models.inputs import WINDOW
from system.errors import UserError
from system.progress import counted, loading, say

NOISE_MARGIN_DB = 10.0  # above the video's own noise floor: someone speaks
LOUDEST_QUIET_DB = -30.0
SMOOTHING_SECONDS = 0.4
SWITCH_MARGIN = 0.05  # of cosine similarity
SCORED_AT_ONCE = 64  # windows per expert call


def speaking_turns(options, source, tracks, count, device, detected=True):
    """(track, start, stop) of each turn of --pick_face auto over ``count`` frames of ``source``
    (a FrameSource), or None (said in one line): take the largest. ``detected``: the tracks are
    S3FD's, padded as the generator's crops are (not --box, which is the crop itself)."""
    from lipsync.sync_similarity import SyncSimilarity  # noqa: PLC0415 - torch

    o = options
    why = None
    if not o.syncnet_checkpoint_path:
        why = "it needs the expert (--syncnet_checkpoint_path) to tell who speaks"
    elif source.static:
        why = "a still image has no speaker to follow"
    else:
        try:
            mels, quiet = own_audio(o.face, float(source.fps), count)
        except UserError:
            why = f"{source.described} has no audio of its own to tell who speaks"
    if why or not tracks:
        say(f"--pick_face auto: {why or 'no face found'}; taking the largest face", o.progress)
        return None
    loading("the expert SyncNet", o.syncnet_checkpoint_path, o.progress)
    similarity = SyncSimilarity(o.syncnet_checkpoint_path, device)
    pads = o.pads if detected else (0, 0, 0, 0)
    with frame_bar("who speaks", count, o.progress) as bar:
        frames = (bar.update(1) or frame for frame in source.frames())
        scores = speaker_scores(similarity, tracks, frames, mels, source.frame_size, pads)
    chosen = choose_speakers(scores, quiet, float(source.fps))
    by_number = {track.number: track for track in tracks}
    turns, start = [], 0
    for number, run in itertools.groupby(chosen):
        length = len(list(run))
        if number is not None:
            turns.append((by_number[number], start, start + length))
        start += length
    spoken = ", ".join(f"face {number} in {sum(c == number for c in chosen)}" for number in sorted(set(chosen) - {None}))
    say(f"{counted(len(tracks), 'face')} found in {source.described}; lip-syncing whoever speaks: "
        f"{spoken or 'nobody'} of {count} frames, {counted(len(turns), 'turn')}", o.progress)
    return turns


def choose_speakers(scores, quiet, fps, smoothing=SMOOTHING_SECONDS, margin=SWITCH_MARGIN):
    """Per frame, the number of the track speaking, or None. ``scores``: {track number: (n,)
    scores, NaN where the track has none}; ``quiet``: (n,) bool, frames where nobody speaks."""
    width = max(1, round(smoothing * fps))
    kernel = np.ones(width)
    smoothed = {}
    for number, values in scores.items():
        known = np.isfinite(values)
        total = np.convolve(np.where(known, values, 0.0), kernel, "same")
        count = np.convolve(known.astype(np.float64), kernel, "same")
        smoothed[number] = np.where(known, total / np.maximum(count, 1), np.nan)  # only where the face is
    chosen, current = [], None
    for i, silent in enumerate(quiet):
        here = {number: values[i] for number, values in smoothed.items() if np.isfinite(values[i])}
        if silent or not here:
            chosen.append(None)
            continue
        leader = max(here, key=lambda number: (here[number], -number))
        if current not in here or here[leader] > here[current] + margin:
            current = leader
        chosen.append(current)
    return chosen


def track_boxes(track, count, frame_size, pads):
    """The crop box (y1, y2, x1, x2) of ``track`` in each of ``count`` frames, None outside its
    span: detections padded as the generator's are, interpolated over the frames between them."""
    frames = np.arange(track.frames[0], min(track.frames[-1] + 1, count))
    boxes = [None] * count
    if not len(frames):
        return boxes
    seen = np.array(track.boxes)
    between = np.stack([np.interp(frames, track.frames, seen[:, k]) for k in range(4)], axis=1)
    for index, box in zip(frames, pad_and_clip(np.rint(between), frame_size, pads)):
        boxes[index] = tuple(int(v) for v in box) if has_area(box) else None
    return boxes


def own_audio(path, fps, count):
    """The video's own audio as the generator would hear it, frame by frame: (mel chunks, quiet),
    each a list of ``count`` (a mel chunk or None where the audio has ended)."""
    utterance, frames = Utterance(fps), []
    for block in audio.mono_blocks(path, hparams.sample_rate, clip=True):
        frames.extend(utterance.push(block.astype(np.float32), now=0.0))
        if len(frames) >= count:
            break
    else:
        frames.extend(utterance.finish())
    frames = frames[:count]
    mels = [frame.mel for frame in frames] + [None] * (count - len(frames))
    levels = np.array([frame.level_db for frame in frames] + [-np.inf] * (count - len(frames)))
    return mels, levels < quiet_level(levels)


def quiet_level(levels):
    """The level (dBFS) below which nobody speaks in a video whose mel windows have ``levels``:
    its own noise floor (the quietest 5 % of its windows) plus 10 dB, within SILENCE_DB (-50,
    digital silence) and -30 (a video without pauses, whose quietest windows are speech)."""
    floor = np.percentile(levels, 5, method="lower") if len(levels) else -np.inf  # -inf: digital silence
    return float(np.clip(floor + NOISE_MARGIN_DB, SILENCE_DB, LOUDEST_QUIET_DB))


def speaker_scores(similarity, tracks, frames, mels, frame_size, pads):
    """{track number: (n,) mean cosine similarity of the windows holding each frame, NaN where
    none does} over ``frames`` (the first pass again), scored by ``similarity`` (SyncSimilarity)."""
    count = len(mels)
    boxes = {track.number: track_boxes(track, count, frame_size, pads) for track in tracks}
    sums = {number: np.zeros(count) for number in boxes}
    counts = {number: np.zeros(count) for number in boxes}
    recent = {number: deque(maxlen=WINDOW) for number in boxes}
    pending = []

    def score():
        values = similarity.cosines([mels[start] for _, start, _ in pending], [faces for _, _, faces in pending])
        for (number, start, _), value in zip(pending, values):
            sums[number][start:start + WINDOW] += value
            counts[number][start:start + WINDOW] += 1
        pending.clear()

    for index, frame in zip(range(count), frames):
        for number, box in ((number, found[index]) for number, found in boxes.items()):
            if box is None:
                recent[number].clear()
                continue
            recent[number].append(face_crop(frame, box, similarity.face_size))
            start = index - WINDOW + 1
            if len(recent[number]) == WINDOW and mels[start] is not None:
                pending.append((number, start, np.stack(recent[number])))
        if len(pending) >= SCORED_AT_ONCE:
            score()
    if pending:
        score()
    return {number: np.where(counts[number] > 0, sums[number] / np.maximum(counts[number], 1), np.nan)
            for number in boxes}
