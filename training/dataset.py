"""The preprocessed LRS2 layout as training samples, drawn exactly as the reference trainers draw them.

Layout (``preprocess.py`` writes it): ``<root>/<video>/<clip>/{0,1,2,...}.jpg`` face crops
numbered by source frame, and ``<root>/<video>/<clip>/audio.wav``. Filelists name one
``<video>/<clip>`` per line in ``<filelists>/{train,val,test}.txt`` (UTF-8, any folder name kept
whole; a line that names no folder whole is read by its first field, as the reference's are).

Sampling, as the reference trainers sample: pick a clip at random, a frame and a different
"wrong" frame; a window is T = 5 consecutive frames; the audio window of frame k is
``mel[int(80 k / 25):][:16]`` (mel time-major). Draws whose window has a gap are redrawn,
as in the reference; draws that hit an unreadable frame or audio file are redrawn too, and
counted, and a clip whose audio cannot be read or holds NaN or infinite samples is dropped
with a warning naming it, so that a dataset with nothing usable stops with a clear error
instead of looping forever.

Out-of-sync clips: when ``<root>/sync_corrections.csv`` (``sync_audit.py --correct``) lists a
clip with an offset, its audio is shifted back into sync as it is loaded
(training/sync_corrections.py) and no draw uses a mel frame that holds the silence the shift
brought in; clips it does not list, and every clip without the file, are drawn as before.
"""

import bisect
import functools
import math
import random
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

import audio
from hparams import hparams
from models.inputs import (
    MEL_STEP,
    WINDOW,
    mask_lower_half,
    stack_lower_halves,
)
from system.atomic_write import atomic_output
from system.errors import UserError, describe_os_error
from training.preprocessing import DONE_MARKER, frame_ids, is_done  # noqa: F401 - the layout, read from here too
from training.sync_corrections import (
    clip_offsets,
    confident_clips,
    corrected_wav,
    left_out_line,
    shift_samples,
)

MIN_FRAMES = 3 * WINDOW  # a clip needs more than this many face crops
SPLITS = ("train", "val", "test")
FILELIST_ENCODING = {"encoding": "utf-8", "errors": "surrogateescape"}  # any folder name's bytes, kept as they are
MAX_FAILED_DRAWS = 1000  # unreadable draws in a row before the data is declared unusable
LEFT_OUT_LIST = "low_confidence.txt"  # beside the filelists: the clips --min_confidence left out


class DataError(UserError):
    """The dataset cannot give samples: no filelist, no usable clip, nothing readable."""


def add_min_confidence_flag(parser):
    """--min_confidence, as make_filelists.py and the trainers take it."""
    parser.add_argument("--min_confidence", type=float, metavar="X",
                        help="leave out the clips whose sync confidence in sync_corrections.csv (written by "
                             "sync_audit.py --correct) is below X; clips it does not list are kept")


def find_filelists(filelists, data_root):
    """The filelists folder to use: ``filelists``, or, when it has no train.txt but
    ``<data_root>/filelists`` does (synthetic_corpus.py writes them there), that one."""
    inside = Path(data_root) / "filelists"
    if not (Path(filelists) / "train.txt").is_file() and (inside / "train.txt").is_file():
        return inside
    return Path(filelists)


def read_filelist(filelists, split, data_root, min_confidence=None):
    """The clip folders ``<filelists>/<split>.txt`` names, under ``data_root``.

    A line names a clip whole when that folder exists (clip names may hold spaces), else by
    its first field (the reference's LRS2 lists add a second, such as "NF"). Entries that name
    no folder are left out with a warning that counts them; with ``min_confidence``, so are
    the clips whose sync confidence is below it (training/sync_corrections.py), named.
    """
    path = Path(filelists) / f"{split}.txt"
    if not path.is_file():
        raise DataError(
            f"no filelist {path}: write train/val/test lists for your preprocessed data with "
            f"make_filelists.py, or pass --filelist_dir DIR"
        )
    lines = [line.removesuffix("\r") for line in path.read_text(**FILELIST_ENCODING).split("\n") if line.strip()]
    if not lines:
        raise DataError(f"filelist {path} is empty")
    clips, missing = [], []
    for line in lines:
        clip = _named_clip(line, Path(data_root))
        if clip is None:
            missing.append(line.split()[0])
        else:
            clips.append(clip)
    if missing and not clips:
        raise DataError(f"{path}: none of its {len(lines)} entries names a folder under {data_root} "
                        f"(first: {missing[0]}); check --data_root and the filelist")
    if missing:
        print(f"warning: {path}: {len(missing)} of {len(lines)} entries name no folder under {data_root} "
              f"(first: {missing[0]}); training goes on without them", file=sys.stderr)
    if min_confidence is None:
        return clips
    names = [clip.relative_to(data_root).as_posix() for clip in clips]
    kept, left_out = confident_clips(data_root, names, min_confidence)
    if left_out:
        print(f"{path}: {left_out_line(data_root, left_out, min_confidence)}")
    return [Path(data_root) / name for name in kept]


def _named_clip(line, data_root):
    """The folder a filelist line names: the whole line, else its first field; None if neither is one."""
    for entry in (line, line.split()[0]):
        if (data_root / entry).is_dir():
            return data_root / entry
    return None


def clip_folders(preprocessed_root):
    """``<video>/<clip>`` names of the clips in a preprocessed folder that training can use.

    A clip is usable when it has audio.wav and more than 15 face crops; clips preprocess.py
    has not finished (no done-marker, or fewer crops than it counts) are left out.
    """
    root = Path(preprocessed_root)
    marked = any(root.glob(f"*/*/{DONE_MARKER}"))  # folders from the reference's script have no markers
    found = []
    for wav in sorted(root.glob("*/*/audio.wav")):
        folder = wav.parent
        if marked and not is_done(folder):
            continue
        if len(frame_ids(folder)) > MIN_FRAMES:
            found.append(folder.relative_to(root).as_posix())
    return found


def write_filelists(preprocessed_root, filelists, val_fraction=0.05, test_fraction=0.05, seed=0, overwrite=False,
                    min_confidence=None):
    """Split the usable clips of ``preprocessed_root`` into train/val/test filelists.

    The split is by video folder, so clips of one video never land in two lists. Existing
    lists are kept unless ``overwrite``. With ``min_confidence``, clips whose sync confidence
    is below it are left out, named, and listed in ``low_confidence.txt`` beside the lists.
    Returns {split: number of clips}.
    """
    filelists = Path(filelists)
    existing = [filelists / f"{split}.txt" for split in SPLITS if (filelists / f"{split}.txt").exists()]
    if existing and not overwrite:
        raise DataError(f"{existing[0]} exists; pass --overwrite to replace the filelists in {filelists}")
    clips = _listable(clip_folders(preprocessed_root), preprocessed_root)
    if not clips:
        raise DataError(f"{preprocessed_root} holds no usable clip (<video>/<clip>/ with audio.wav and > {MIN_FRAMES} face crops)")
    left_out = []
    if min_confidence is not None:
        clips, left_out = confident_clips(preprocessed_root, clips, min_confidence)
    videos = sorted({clip.split("/")[0] for clip in clips})
    random.Random(seed).shuffle(videos)
    n_val = round(len(videos) * val_fraction) if val_fraction else 0
    n_test = round(len(videos) * test_fraction) if test_fraction else 0
    if len(videos) > 2:  # a requested split gets at least one video while train keeps one
        n_val, n_test = max(n_val, val_fraction > 0), max(n_test, test_fraction > 0)
    if n_val + n_test >= len(videos):
        raise DataError(f"{len(videos)} video folders are too few for train, val and test lists")
    split_of = {video: "val" for video in videos[:n_val]}
    split_of.update({video: "test" for video in videos[n_val:n_val + n_test]})
    lists = {split: [clip for clip in clips if split_of.get(clip.split("/")[0], "train") == split] for split in SPLITS}
    for split, entries in lists.items():
        _write_list(filelists / f"{split}.txt", entries)
    if left_out:
        _write_list(filelists / LEFT_OUT_LIST, left_out)
        print(f"{left_out_line(preprocessed_root, left_out, min_confidence)} (all: {filelists / LEFT_OUT_LIST})")
    else:  # an earlier split's list of left-out clips no longer holds
        (filelists / LEFT_OUT_LIST).unlink(missing_ok=True)
    return {split: len(entries) for split, entries in lists.items()}


def _write_list(path, entries):
    with atomic_output(path) as temporary:
        Path(temporary).write_text("".join(f"{entry}\n" for entry in entries), **FILELIST_ENCODING)


def _listable(clips, preprocessed_root):
    """The clips a line of a filelist can name: not those whose names hold a line break (warned about)."""
    broken = [clip for clip in clips if "\n" in clip or "\r" in clip]
    if broken:
        print(f"warning: {preprocessed_root}: {len(broken)} clip folder(s) cannot be listed, as their names hold "
              f"a line break (first: {broken[0]!r}); rename them and run make_filelists.py again", file=sys.stderr)
    return [clip for clip in clips if clip not in broken]


def audio_window_start(frame_id, fps=None):
    """The first mel frame of frame ``frame_id``'s audio window."""
    return int(audio.mel_fps() * (frame_id / float(fps or hparams.fps)))


def crop_audio_window(mel, frame_id):
    """The 16 mel frames (time-major) starting at frame ``frame_id``; shorter at the end."""
    start = audio_window_start(frame_id)
    return mel[start:start + MEL_STEP]


def segmented_mels(mel, frame_id):
    """Per-frame audio windows for frames id..id+4, each starting one frame earlier (id+j-1).

    None when a window falls outside the audio (id 0 has no frame before it).
    """
    if frame_id < 1:
        return None
    windows = [crop_audio_window(mel, frame_id + j - 1) for j in range(WINDOW)]
    if any(len(window) != MEL_STEP for window in windows):
        return None
    return np.stack([window.T for window in windows])


def holds_own_audio(own, first_frame, last_frame):
    """Whether the audio windows of frames ``first_frame`` to ``last_frame`` lie within the mel
    frames ``own`` (the range that holds the clip's own audio)."""
    return own.start <= audio_window_start(first_frame) and audio_window_start(last_frame) + MEL_STEP <= own.stop


def own_mel_frames(offset, samples, columns):
    """The range of the mel frames (of ``columns``) of ``samples`` of audio corrected by ``offset``
    that hold the clip's own audio alone: each one's STFT window (n_fft samples centred on its
    hop) misses the silence the shift brought in, and, at the start, the first sample after it,
    which pre-emphasis mixes with that silence. These frames equal the in-sync clip's."""
    shift = shift_samples(offset, hparams.sample_rate, hparams.fps)
    hop, half = audio.get_hop_size(), hparams.n_fft // 2
    first = math.ceil((shift + 1 + half) / hop) if shift > 0 else 0
    stop = (samples + shift - half) // hop + 1 if shift < 0 else columns
    return range(min(first, columns), max(min(stop, columns), 0))


def window_ids(ids, start):
    """The T consecutive frame ids from ``start`` in the sorted ``ids``, or None when one is missing."""
    at = bisect.bisect_left(ids, start)
    window = list(range(start, start + WINDOW))
    return window if list(ids[at:at + WINDOW]) == window else None


def small_crops_note(clips, face_size, looked_at=64):
    """A note on the clips, of up to ``looked_at`` spread over ``clips``, whose first face crop is
    smaller than ``face_size`` on a side (None if none is). Such crops are upscaled to it, as
    every crop is resized to it: they train a larger network, but hold only their own detail."""
    step = max(1, len(clips) // looked_at)
    sizes = {}
    for clip in clips[::step][:looked_at]:
        ids = frame_ids(clip)
        image = cv2.imread(str(clip / f"{ids[0]}.jpg")) if ids else None
        if image is not None:
            sizes[clip] = image.shape[:2]
    small = {clip: size for clip, size in sizes.items() if min(size) < face_size}
    if not small:
        return None
    clip, (height, width) = next(iter(small.items()))
    return (f"note: {len(small)} of {len(sizes)} clips looked at have face crops smaller than the face size "
            f"{face_size} (e.g. {width}x{height} in {clip}): they are upscaled to it and hold no more detail than "
            "at their own size (preprocess.py keeps crops at the video's resolution: larger faces give larger crops)")


class Unreadable(Exception):
    """A frame or audio file that cannot be read: the draw is skipped and counted."""


class LRS2Clips(torch.utils.data.Dataset):
    """Random windows from the clips a filelist names; ``len`` is the number of clips.

    As in the reference, every item is a fresh random draw: a clip, a frame, a wrong frame.
    The index only seeds it: item ``n`` is drawn from a generator seeded by (``seed``, n),
    so it is the same whichever worker draws it, and a resumed run can draw exactly what the
    uninterrupted one would have (see training.StepSampler). Each item ends with the number
    of unreadable draws skipped before it.
    """

    def __init__(self, clips, seed=0, face_size=None):
        self.clips = [Path(clip) for clip in clips]
        self.face_size = face_size or hparams.face_size  # the crops are resized to it, up or down
        if not self.clips:
            raise DataError("the filelist names no clip")
        self.offsets = clip_offsets(self.clips)  # the corrected clips' audio offsets, in frames
        self.seed = seed
        self.rng = None  # each item's own generator, set by __getitem__
        self.dropped = set()  # clips whose audio could not be read
        self._ids = {}

    def __len__(self):
        return len(self.clips)

    def __getitem__(self, index):
        self.rng = random.Random(f"{self.seed}:{index}")  # a str seed is hashed the same in every process
        skipped = 0
        for _ in range(MAX_FAILED_DRAWS):
            clip = self.clips[self.rng.randrange(len(self.clips))]
            if clip in self.dropped:
                continue
            try:
                sample = self.draw(clip)
            except Unreadable:
                skipped += 1
                continue
            if sample is not None:
                return (*sample, skipped)
            if len(self.dropped) == len(self.clips):
                break
        raise DataError(self._nothing_usable())

    def _nothing_usable(self):
        short = sum(len(self.frame_ids(clip)) <= MIN_FRAMES for clip in self.clips)
        return (
            f"no usable training sample in {len(self.clips)} clips after {MAX_FAILED_DRAWS} draws "
            f"({short} have <= {MIN_FRAMES} face crops, {len(self.dropped)} have unreadable audio, "
            f"e.g. {self.clips[0]}); check --data_root and the filelists"
        )

    def frame_ids(self, clip):
        if clip not in self._ids:
            self._ids[clip] = tuple(frame_ids(clip))  # sorted
        return self._ids[clip]

    def pick_frames(self, clip):
        """A random frame and a different wrong frame of ``clip``, or None if it is too short."""
        ids = self.frame_ids(clip)
        if len(ids) <= MIN_FRAMES:
            return None
        frame = self.rng.choice(ids)
        wrong = self.rng.choice(ids)
        while wrong == frame:
            wrong = self.rng.choice(ids)
        return frame, wrong

    def pick_windows(self, clip):
        """(a random frame, its window's ids, a wrong window's ids) of ``clip``, or None when the
        clip is too short or either window has a gap (the draw is then redone)."""
        frames = self.pick_frames(clip)
        if frames is None:
            return None
        frame, wrong = frames
        ids, wrong_ids = window_ids(self.frame_ids(clip), frame), window_ids(self.frame_ids(clip), wrong)
        return None if ids is None or wrong_ids is None else (frame, ids, wrong_ids)

    def read_window(self, clip, ids):
        """The frames ``ids`` of ``clip`` as face_size x face_size BGR float arrays in [0, 1]."""
        size = self.face_size
        window = []
        for frame in ids:
            image = cv2.imread(str(clip / f"{frame}.jpg"))
            if image is None or image.size == 0:
                raise Unreadable(clip / f"{frame}.jpg")
            window.append(cv2.resize(image, (size, size)))
        return np.asarray(window, dtype=np.float32) / 255.0

    def mel(self, clip):
        """The clip's mel spectrogram, time-major, and the range of its frames that hold the clip's
        own audio (``own_mel_frames``: all of them unless its audio is corrected); a clip whose
        audio cannot be read (or holds NaN or infinite samples) is dropped, with a warning naming it."""
        try:
            return _clip_mel(str(clip / "audio.wav"), self.offsets.get(clip, 0))
        except (UserError, OSError, ValueError) as error:
            self.dropped.add(clip)
            reason = describe_os_error(error) if isinstance(error, OSError) else str(error).strip()
            print(f"warning: skipping clip {clip}: {reason}", file=sys.stderr)
            raise Unreadable(clip / "audio.wav") from error

    def audio_window(self, clip, frame):
        """The 16 mel frames of ``frame``'s audio (time-major), or None where they run off the
        audio or into the silence a sync correction brought in (the draw is then redone)."""
        mel, own = self.mel(clip)
        window = crop_audio_window(mel, frame)
        return window if len(window) == MEL_STEP and holds_own_audio(own, frame, frame) else None

    def draw(self, clip):
        raise NotImplementedError


class ExpertSamples(LRS2Clips):
    """Samples for the expert SyncNet: (lower halves 15 x S/2 x S (S: face_size, 96 as released),
    mel 1x80x16, label, skipped).

    With probability 1/2 the window starts at the frame (label 1), else at the wrong frame
    (label 0); the audio is always the frame's.
    """

    @staticmethod
    def sample_bytes():
        return 4 * (3 * WINDOW * hparams.face_size ** 2 // 2 + MEL_STEP * hparams.num_mels + 1)

    def draw(self, clip):
        frames = self.pick_frames(clip)
        if frames is None:
            return None
        frame, wrong = frames
        positive = self.rng.choice([True, False])
        ids = window_ids(self.frame_ids(clip), frame if positive else wrong)
        if ids is None:
            return None
        window = self.read_window(clip, ids)
        mel = self.audio_window(clip, frame)
        if mel is None:
            return None
        faces = stack_lower_halves(torch.from_numpy(window).permute(3, 0, 1, 2))  # (T, H, W, 3) -> (3T, H/2, W)
        label = torch.ones(1) if positive else torch.zeros(1)
        return faces, torch.from_numpy(mel.T.copy()).unsqueeze(0), label


class ContrastiveExpertSamples(LRS2Clips):
    """Samples for the expert's contrastive loss (``expert_loss=infonce``): (the in-sync window's
    lower halves 15 x S/2 x S, a window of the same clip shifted off its audio, likewise, mel
    1x80x16, skipped). Drawn as ExpertSamples draws, without the coin: both windows each time."""

    @staticmethod
    def sample_bytes():
        return 4 * (2 * 3 * WINDOW * hparams.face_size ** 2 // 2 + MEL_STEP * hparams.num_mels)

    def draw(self, clip):
        windows = self.pick_windows(clip)
        if windows is None:
            return None
        frame, ids, wrong_ids = windows
        mel = self.audio_window(clip, frame)
        if mel is None:
            return None
        faces, shifted = (stack_lower_halves(torch.from_numpy(self.read_window(clip, window)).permute(3, 0, 1, 2))
                          for window in (ids, wrong_ids))
        return faces, shifted, torch.from_numpy(mel.T.copy()).unsqueeze(0)


class GeneratorSamples(LRS2Clips):
    """Samples for Wav2Lip: (input 6x5xSxS, per-frame mels 5x1x80x16, window mel 1x80x16,
    target 3x5xSxS, skipped), S the face size (96 as released).

    The input stacks the window with its lower half zeroed and a wrong window; per-frame audio
    starts one frame earlier than each frame (see ``segmented_mels``).
    """

    @staticmethod
    def sample_bytes():
        return 4 * ((6 + 3) * WINDOW * hparams.face_size ** 2 + (WINDOW + 1) * MEL_STEP * hparams.num_mels)

    def draw(self, clip):
        windows = self.pick_windows(clip)
        if windows is None:
            return None
        frame, ids, wrong_ids = windows
        window, wrong_window = self.read_window(clip, ids), self.read_window(clip, wrong_ids)
        mel, own = self.mel(clip)
        window_mel = crop_audio_window(mel, frame)
        if len(window_mel) != MEL_STEP or not holds_own_audio(own, frame - 1, frame + WINDOW - 2):
            return None  # its per-frame windows are those of frames frame - 1 to frame + 3
        frame_mels = segmented_mels(mel, frame)
        if frame_mels is None:
            return None
        target = window.transpose(3, 0, 1, 2)  # (3, T, H, W)
        faces = np.concatenate([mask_lower_half(target), wrong_window.transpose(3, 0, 1, 2)], axis=0)
        return (
            torch.from_numpy(faces),
            torch.from_numpy(frame_mels).unsqueeze(1),
            torch.from_numpy(window_mel.T.copy()).unsqueeze(0),
            torch.from_numpy(np.ascontiguousarray(target)),
        )


@functools.lru_cache(maxsize=64)
def _clip_mel(wav_path, offset=0):
    """Mel spectrograms of recently used clips (a sample reads its clip's whole audio), shifted
    by their sync correction's ``offset``, and the range of their frames ``own_mel_frames`` keeps."""
    wav = audio.check_finite(audio.load_wav(wav_path, hparams.sample_rate), wav_path)  # NaN: the clip is dropped
    mel = audio.melspectrogram(corrected_wav(wav, offset, hparams.sample_rate, hparams.fps)).T.astype(np.float32)
    return mel, own_mel_frames(offset, len(wav), len(mel))

