"""Synthetic conversations: two or three cartoon speakers side by side, taking turns.

Each scene is FRAME_SIZE high and FRAME_SIZE wide per person; person i's face lies inside
``face_box(i)`` (the single-speaker FACE_BOX moved right by i x FRAME_SIZE). Turns of 1.2 to
3 s follow each other with pauses of 0.2 to 0.6 s, each turn spoken by someone other than the
last speaker, in the syllables (and mouths) of training/synthetic_data.py; whoever is not
speaking keeps a closed mouth. Beside each ``conversationNNN.mp4`` the truth of who speaks
when, ``conversationNNN.speakers.csv``: per frame, ``speaking`` (the person whose syllable
sounds in the frame's 40 ms, none in the gaps between syllables) and ``turn`` (whose turn it
is, none in the pauses between turns); people are numbered from 0, left to right.
"""

import random
from pathlib import Path

import numpy as np
from tqdm import tqdm

from system.reports import write_rows
from training.synthetic_data import (
    FACE_BOX,
    FPS,
    FRAME_SIZE,
    mouth_at,
    random_speaker,
    render_frame,
    speech,
    syllables,
    write_raw_clip,
)

TURN_SECONDS = (1.2, 3.0)
PAUSE_SECONDS = (0.2, 0.6)


def face_box(person):
    """(top, bottom, left, right) of person ``person``'s face in the scene, as --box takes it."""
    top, bottom, left, right = FACE_BOX
    return top, bottom, left + person * FRAME_SIZE, right + person * FRAME_SIZE


def turns_of(rng, people, seconds):
    """(person, start, end) of each turn."""
    turns, t, who = [], rng.uniform(0.3, 0.8), rng.randrange(people)
    while t < seconds - 1.0:
        end = min(t + rng.uniform(*TURN_SECONDS), seconds - 0.2)
        turns.append((who, t, end))
        t = end + rng.uniform(*PAUSE_SECONDS)
        who = (who + rng.randrange(1, people)) % people
    return turns


def conversation_media(speakers, seconds, seed):
    """(frames, audio, truth) of one scene: ``truth`` holds a row per frame (frame, speaking, turn)."""
    rng = random.Random(seed)
    turns = turns_of(rng, len(speakers), seconds)
    said = [[] for _ in speakers]
    for number, (who, start, end) in enumerate(turns):
        spoken = syllables(random.Random(f"{seed}:{number}"), speakers[who], end - start)
        said[who] += [(start + at, duration, vowel, loudness) for at, duration, vowel, loudness in spoken]
    noise = np.random.default_rng(seed)
    wav = np.clip(sum(speech(speaker, said[i], seconds, noise) for i, speaker in enumerate(speakers)), -1, 1)
    frames, truth = [], []
    for k in range(int(seconds * FPS)):
        t = (k + 0.5) / FPS
        frames.append(np.hstack([render_frame(speaker, mouth_at(said[i], t), k / FPS) for i, speaker in
                                 enumerate(speakers)]))
        sounding = [i for i in range(len(speakers)) if any(s <= t < s + d for s, d, _, _ in said[i])]
        turn = [who for who, start, end in turns if start <= t < end]
        truth.append({"frame": k, "speaking": sounding[0] if sounding else "", "turn": turn[0] if turn else ""})
    return frames, wav.astype(np.float32), truth


def make_conversations(out, count=4, people=2, seconds=20.0, seed=0, progress=False):
    """Write ``count`` scenes to ``out``; returns their paths."""
    out, rng, paths = Path(out), random.Random(f"{seed}:conversations"), []
    for number in tqdm(range(count), desc="conversations", unit="scene", disable=not progress):
        speakers = [random_speaker(rng) for _ in range(people)]
        frames, wav, truth = conversation_media(speakers, seconds, seed * 1_000_003 + number)
        path = out / f"conversation{number:03d}.mp4"
        write_raw_clip(path, frames, wav)
        write_rows(path.with_suffix(".speakers.csv"), truth)
        paths.append(path)
    return paths
