"""A synthetic talking-face corpus: cartoon speakers whose mouths follow what they say.

Each clip is a run of syllables; a syllable is a vowel (a, e, i, o, u) voiced through its
formants at the speaker's pitch, opening and closing like speech. The mouth follows the
same syllables: how far it opens follows the loudness envelope and its shape (wide, spread,
round, small round) follows the vowel, so lip sync can only be learned from the audio's
content, not from its loudness alone. Speakers differ in skin, background and lip colour,
face size and position, pitch and speaking rate, and their heads move slightly.

``make_corpus`` writes raw clips, ``<out>/<speaker>/<clip>.mp4`` with the face inside
``FACE_BOX``, or the preprocessed layout (``<out>/<speaker>/<clip>/<k>.jpg``, ``audio.wav``)
with filelists; ``synthetic_corpus.py`` is its command line. Out-of-sync data to measure the
sync audit with: ``av_offset_share`` of the clips get their sound moved by whole frames against
the picture, and ``<out>/av_offsets.csv`` says by how much.
"""

import math
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy import signal
from tqdm import tqdm

import audio
from media.containers import VideoWriter, write_jpeg
from media.provenance import drawn_metadata
from system.reports import write_rows
from training import dataset
from training.sync_corrections import shift_samples

FPS = 25
SAMPLE_RATE = 16000
FRAME_SIZE = 160
FACE_BOX = (16, 144, 16, 144)  # top, bottom, left, right: where every speaker's face lies
# The scale frames are drawn at for each face size of the networks (models.inputs.FACE_SIZES),
# so that the face box (128 pixels at scale 1) holds at least that many pixels: 256 and 384.
SCALES = {96: 1, 192: 2, 384: 3}

# Vowel: formants F1..F3 (Hz) and the mouth it is said with: width and opening, as
# fractions of the face's width, at full articulation.
VOWELS = {
    "a": ((800, 1200, 2500), 0.36, 0.26),
    "e": ((500, 1900, 2500), 0.38, 0.12),
    "i": ((300, 2300, 3000), 0.44, 0.05),
    "o": ((500, 900, 2400), 0.24, 0.22),
    "u": ((320, 800, 2300), 0.15, 0.13),
}
REST_MOUTH = (0.30, 0.015)  # width, opening of a closed mouth
BACKGROUND_NOISE = 0.002  # the level of a speaker's silence
OFFSETS_FILE = "av_offsets.csv"


@dataclass
class Speaker:
    skin: tuple
    background: tuple
    lips: tuple
    face_scale: float  # face half-width, as a fraction of the box
    offset: tuple  # face centre, pixels from the box's centre
    pitch: float  # Hz
    rate: float  # syllables per second
    sway: tuple  # head motion: amplitude (px), frequency (Hz), phase


def random_speaker(rng):
    def colour(low, high):
        return tuple(int(rng.uniform(low, high)) for _ in range(3))

    tone = rng.uniform(0.45, 1.15)
    skin = tuple(int(min(250, max(30, c * tone + rng.uniform(-20, 20)))) for c in (110, 150, 200))
    return Speaker(
        skin=skin,
        background=colour(20, 235),
        lips=(int(rng.uniform(40, 110)), int(rng.uniform(30, 90)), int(rng.uniform(130, 220))),
        face_scale=rng.uniform(0.30, 0.38),
        offset=(rng.uniform(-5, 5), rng.uniform(-5, 5)),
        pitch=rng.uniform(95, 230),
        rate=rng.uniform(2.5, 4.5),
        sway=(rng.uniform(0.5, 2.5), rng.uniform(0.2, 0.8), rng.uniform(0, 2 * math.pi)),
    )


def syllables(rng, speaker, seconds):
    """(start, duration, vowel, loudness) of the syllables of one utterance."""
    out, t = [], rng.uniform(0.0, 0.3)
    while t < seconds - 0.15:
        duration = rng.uniform(0.5, 1.1) / speaker.rate
        out.append((t, min(duration, seconds - t), rng.choice(list(VOWELS)), rng.uniform(0.5, 1.0)))
        t += duration + (rng.uniform(0.3, 0.7) if rng.random() < 0.15 else rng.uniform(0.03, 0.12))
    return out


def envelope(phase):
    """Opening of a syllable at ``phase`` in [0, 1]: quick rise, held, slower fall."""
    return float(np.clip(np.sin(np.pi * np.clip(phase, 0, 1)) ** 0.6, 0, 1))


def mouth_at(syllable_list, t):
    """Mouth (width, opening) at time ``t``: the vowel's shape scaled by the envelope."""
    for start, duration, vowel, loudness in syllable_list:
        if start <= t < start + duration:
            e = envelope((t - start) / duration) * (0.6 + 0.4 * loudness)
            _, width, opening = VOWELS[vowel]
            rest_width, rest_opening = REST_MOUTH
            return rest_width + e * (width - rest_width), rest_opening + e * (opening - rest_opening)
    return REST_MOUTH


def speech(speaker, syllable_list, seconds, noise, sample_rate=SAMPLE_RATE):
    """The utterance as float audio: a pulse train at the speaker's pitch through the vowel's
    formant resonators, shaped by the same envelope as the mouth, with a noise burst at each
    onset and a little background noise."""
    wav = noise.normal(0, BACKGROUND_NOISE, int(seconds * sample_rate))
    for start, duration, vowel, loudness in syllable_list:
        n = int(duration * sample_rate)
        t = np.arange(n) / sample_rate
        pitch = speaker.pitch * (1 + 0.04 * np.sin(2 * np.pi * 5 * t)) * noise.uniform(0.92, 1.08)
        source = np.diff(np.floor(np.cumsum(pitch) / sample_rate), prepend=0.0)  # one pulse per period
        voiced = source
        for formant, bandwidth in zip(VOWELS[vowel][0], (80, 100, 140)):
            r = math.exp(-math.pi * bandwidth / sample_rate)
            theta = 2 * math.pi * formant / sample_rate
            voiced = signal.lfilter([1 - r], [1, -2 * r * math.cos(theta), r * r], voiced)
        shape = np.array([envelope(p) for p in np.linspace(0, 1, n)])
        voiced = voiced / (np.abs(voiced).max() + 1e-9) * shape * loudness * 0.5
        burst = min(n, int(0.025 * sample_rate))
        voiced[:burst] += noise.normal(0, 0.05 * loudness, burst) * np.linspace(1, 0, burst)
        begin = int(start * sample_rate)
        wav[begin:begin + n] += voiced[: len(wav) - begin]
    return np.clip(wav, -1, 1).astype(np.float32)


def face_box(scale=1):
    """FACE_BOX in a frame drawn at ``scale``."""
    return tuple(scale * edge for edge in FACE_BOX)


def render_frame(speaker, mouth, t, scale=1):
    """One BGR frame of FRAME_SIZE x ``scale`` pixels a side: the speaker's face inside
    face_box(scale) with the given mouth. Scale 1 is the corpus the 96-pixel networks train on;
    from scale 2 on, the mouth also has what a 96-pixel crop cannot hold (mouth_detail)."""
    frame = np.empty((FRAME_SIZE * scale, FRAME_SIZE * scale, 3), np.uint8)
    frame[:] = speaker.background
    top, bottom, left, right = face_box(scale)
    box = bottom - top
    amplitude, frequency, phase = speaker.sway
    amplitude *= scale
    cx = (left + right) / 2 + scale * speaker.offset[0] + amplitude * math.sin(2 * math.pi * frequency * t + phase)
    cy = (top + bottom) / 2 + scale * speaker.offset[1] + 0.6 * amplitude * math.cos(2 * math.pi * frequency * 0.7 * t + phase)
    half = speaker.face_scale * box

    def ellipse(x, y, ax, ay, colour):
        cv2.ellipse(frame, (round(x * 16), round(y * 16)), (max(1, round(ax * 16)), max(1, round(ay * 16))),
                    0, 0, 360, colour, -1, cv2.LINE_AA, shift=4)

    ellipse(cx, cy, half, half * 1.25, speaker.skin)
    for side in (-1, 1):
        ellipse(cx + side * 0.4 * half, cy - 0.3 * half, 0.16 * half, 0.09 * half, (250, 250, 250))
        ellipse(cx + side * 0.4 * half, cy - 0.3 * half, 0.07 * half, 0.07 * half, (40, 30, 20))
    nose = tuple(int(c * 0.75) for c in speaker.skin)
    ellipse(cx, cy + 0.12 * half, 0.09 * half, 0.16 * half, nose)
    width, opening = mouth
    mx, my = cx, cy + 0.62 * half
    ellipse(mx, my, width * half, (opening + 0.07) * half, speaker.lips)
    ellipse(mx, my, width * half * 0.82, opening * half, (25, 20, 45))
    if opening > 0.06:  # upper teeth show once the mouth is open
        ellipse(mx, my - opening * half * 0.6, width * half * 0.55, opening * half * 0.3, (235, 235, 235))
    if scale > 1:
        mouth_detail(frame, speaker, mouth, (mx, my), half, scale)
    return frame


def mouth_detail(frame, speaker, mouth, centre, half, scale):
    """What only a large face shows, drawn in lines one or two pixels wide at the frame's
    resolution (under a pixel once the face is cut to 96): the lips' creases, the gaps between
    the upper teeth, the lower teeth and the tongue of a wide-open mouth. All follow the mouth,
    so they too are said by the audio."""
    width, opening = mouth
    mx, my = centre
    thin = max(1, scale // 2)
    crease = tuple(int(c * 0.7) for c in speaker.lips)
    for k in range(-5, 6):  # vertical creases on both lips, between the mouth's edge and the lips'
        dx = k * width * half / 7
        outer = (opening + 0.07) * half * math.sqrt(max(0.0, 1 - (dx / (width * half)) ** 2))
        inner = opening * half * math.sqrt(max(0.0, 1 - (dx / (0.82 * width * half)) ** 2))
        for y0, y1 in ((my - outer, my - inner), (my + inner, my + outer)):
            if y1 - y0 > 2 * thin:
                cv2.line(frame, (round(mx + dx), round(y0 + thin)), (round(mx + dx), round(y1 - thin)), crease, thin,
                         cv2.LINE_AA)
    if opening > 0.06:
        teeth_top, teeth_bottom = my - opening * half * 0.9, my - opening * half * 0.3
        for k in range(-3, 4):  # the gaps between the upper teeth
            x = mx + k * width * half * 0.55 / 3.5
            cv2.line(frame, (round(x), round(teeth_top)), (round(x), round(teeth_bottom)), (150, 150, 160), thin,
                     cv2.LINE_AA)
    if opening > 0.12:  # a wide-open mouth: lower teeth, and the tongue behind them
        cv2.ellipse(frame, (round(mx), round(my + opening * half * 0.45)),
                    (round(width * half * 0.45), round(opening * half * 0.35)), 0, 0, 360, (90, 80, 190), -1, cv2.LINE_AA)
        cv2.ellipse(frame, (round(mx), round(my + opening * half * 0.8)),
                    (round(width * half * 0.45), round(opening * half * 0.15)), 0, 180, 360, (225, 225, 225), -1,
                    cv2.LINE_AA)


def clip_media(speaker, seconds, seed, scale=1):
    """(frames, audio) of one clip of ``seconds``, the same for the same ``seed``."""
    syllable_list = syllables(random.Random(seed), speaker, seconds)
    wav = speech(speaker, syllable_list, seconds, np.random.default_rng(seed))
    # Frame k shows the mouth in the middle of its 40 ms.
    frames = [render_frame(speaker, mouth_at(syllable_list, (k + 0.5) / FPS), k / FPS, scale)
              for k in range(int(seconds * FPS))]
    return frames, wav


def chosen_offsets(seed, count, share, most):
    """{clip number: offset} for round(``share`` * ``count``) of ``count`` clips, chosen by
    ``seed``: a whole number of frames in -most..-1 or 1..most, with LSE's sign (audio that comes
    d frames late is -d). Drawn from a generator of their own, so that the clips are the same
    whatever the share."""
    rng = random.Random(f"{seed}:av_offsets")
    chosen = sorted(rng.sample(range(count), round(share * count)))
    return {number: rng.choice((-1, 1)) * rng.randint(1, most) for number in chosen}


def out_of_sync(wav, offset, seed, sample_rate=SAMPLE_RATE):
    """``wav`` moved against the picture so that its offset is ``offset`` frames (LSE's sign),
    the same length: late sound starts after the speaker's silence and loses its end; early
    sound loses its start and ends in that silence."""
    late = -shift_samples(offset, sample_rate, FPS)  # samples
    silence = np.random.default_rng(seed).normal(0, BACKGROUND_NOISE, abs(late)).astype(wav.dtype)
    return np.concatenate([silence, wav[:len(wav) - late]] if late > 0 else [wav[-late:], silence])


def face_crop(frame):
    top, bottom, left, right = face_box(len(frame) // FRAME_SIZE)
    return frame[top:bottom, left:right]


def write_raw_clip(path, frames, wav):
    with tempfile.TemporaryDirectory() as folder:
        wav_path = Path(folder) / "audio.wav"
        audio.save_wav(wav, wav_path, SAMPLE_RATE)
        with VideoWriter(path, FPS, audio_path=wav_path, crf=12, metadata=drawn_metadata("synthetic_corpus.py")) as writer:
            for frame in frames:
                writer.write(frame)


def write_preprocessed_clip(folder, frames, wav):
    folder.mkdir(parents=True, exist_ok=True)
    for k, frame in enumerate(frames):
        write_jpeg(folder / f"{k}.jpg", face_crop(frame))
    audio.save_wav(wav, folder / "audio.wav", SAMPLE_RATE)
    (folder / dataset.DONE_MARKER).touch()


def make_corpus(out, layout="preprocessed", speakers=24, clips=6, seconds=3.0, seed=0, filelists=None, overwrite=False,
                progress=False, av_offset_share=0.0, av_offset_max=8, face_size=96):
    """Write the corpus; returns the number of clips (and writes filelists for the preprocessed
    layout). With ``av_offset_share``, that share of the clips is out of sync (``out_of_sync``)
    by up to ``av_offset_max`` frames, and ``<out>/av_offsets.csv`` holds every clip's offset.
    ``face_size`` (96, 192, 384) draws the frames at its SCALES, the face box at least that large;
    the speakers, their speech and their mouths' movements are the same at every size."""
    scale = SCALES[face_size]
    out = Path(out)
    rng = random.Random(seed)
    offsets = chosen_offsets(seed, speakers * clips, av_offset_share, av_offset_max)
    count, truth = 0, []
    bar = tqdm(total=speakers * clips, desc="synthetic clips", unit="clip", disable=not progress)
    for s in range(speakers):
        speaker = random_speaker(rng)
        for c in range(clips):
            clip_seed = seed * 1_000_003 + s * 1009 + c
            frames, wav = clip_media(speaker, seconds, clip_seed, scale)
            offset = offsets.get(count, 0)
            if offset:
                wav = out_of_sync(wav, offset, [clip_seed, 1])
            name = f"speaker{s:03d}"
            if layout == "raw":
                write_raw_clip(out / name / f"{c:05d}.mp4", frames, wav)
            else:
                write_preprocessed_clip(out / name / f"{c:05d}", frames, wav)
            truth.append({"clip": f"{name}/{c:05d}", "offset": offset})
            count += 1
            bar.update()
    bar.close()
    if av_offset_share > 0:
        write_rows(out / OFFSETS_FILE, truth)
    else:  # every clip in sync: an earlier corpus's offsets no longer hold
        (out / OFFSETS_FILE).unlink(missing_ok=True)
    if layout == "preprocessed":
        # Lists inside the corpus are its own to replace; lists elsewhere (filelists/) are not.
        dataset.write_filelists(out, filelists or out / "filelists", val_fraction=0.15, test_fraction=0.1,
                                     seed=seed, overwrite=overwrite or filelists is None)
    return count
