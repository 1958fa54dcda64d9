"""Several faces in the picture: each frame's detections linked into face tracks, and the one
``--pick_face`` chooses (or the one of several ``--box`` it chooses).

A track follows one face while its boxes overlap from one detection to the next (IoU above
0.5), and takes it up again where it comes back to the same place (after a cut-away); a face
anywhere else (another person, a jump) starts a new track. ``--pick_face``:

    best      the reference: the best-scoring box of each frame, whoever it belongs to
    largest   the face that takes up most of the video (its box areas summed over the frames)
    X,Y       the face whose box holds that pixel in the first frame where a box holds it
    auto      whoever speaks in the video's own audio, as the expert hears it (lipsync/speakers.py)
"""

import dataclasses
import re

import numpy as np

from face_detection.boxes import box_area, iou
from lipsync.box_planning import FACE, NO_FACE, NOT_RUN
from system.errors import UserError

LINK_IOU = 0.5
PICKS = "best, largest, X,Y (a pixel of the face, as --box counts them) or auto"


def parse_pick(text):
    """--pick_face's value: "best", "largest", "auto" or (x, y)."""
    if text in ("best", "largest", "auto"):
        return text
    found = re.fullmatch(r"\s*(\d+)\s*,\s*(\d+)\s*", str(text))
    if found is None:
        raise UserError(f"--pick_face takes {PICKS}, not {text!r}")
    return int(found.group(1)), int(found.group(2))


def holds(box, point):
    """Whether a box (x1, y1, x2, y2) holds the pixel (x, y)."""
    x, y = point
    return box[0] <= x < box[2] and box[1] <= y < box[3]


@dataclasses.dataclass
class FaceTrack:
    number: int  # 1, 2, ... in order of first appearance
    frames: list = dataclasses.field(default_factory=list)  # frame indices where the face was detected
    boxes: list = dataclasses.field(default_factory=list)  # its detector boxes there (x1, y1, x2, y2)

    def add(self, index, box):
        self.frames.append(index)
        self.boxes.append(tuple(float(v) for v in box[:4]))

    @property
    def total_area(self):
        return sum(box_area(box) for box in self.boxes)

    def first_holding(self, point):
        """(frame, box area) of the first detection whose box holds ``point``, or None."""
        return next(((index, box_area(box)) for index, box in zip(self.frames, self.boxes) if holds(box, point)), None)

    def described(self):
        x1, y1, x2, y2 = (round(v) for v in self.boxes[0])
        return (f"face {self.number} (frames {self.frames[0]}-{self.frames[-1]}, first box {y1} {y2} {x1} {x2} "
                "top bottom left right)")


def link_tracks(detections):
    """Face tracks from per-frame detections: None where the detector did not run, else the
    frame's boxes (k x 4+, x1 y1 x2 y2 first). Each box joins the track whose last box it
    overlaps most (IoU above LINK_IOU; each track one box a frame), however long ago that
    was: a face back where it left (after a cut-away) is the same face; any other starts a track."""
    tracks = []
    for index, boxes in enumerate(detections):
        if boxes is None:
            continue
        pairs = sorted(((iou(track.boxes[-1], box), t, j) for t, track in enumerate(tracks)
                        for j, box in enumerate(boxes)), key=lambda pair: (-pair[0], pair[1], pair[2]))
        taken_tracks, taken_boxes = set(), set()
        for overlap, t, j in pairs:
            if overlap > LINK_IOU and t not in taken_tracks and j not in taken_boxes:
                tracks[t].add(index, boxes[j])
                taken_tracks.add(t)
                taken_boxes.add(j)
        for j, box in enumerate(boxes):
            if j not in taken_boxes:
                track = FaceTrack(len(tracks) + 1)
                track.add(index, box)
                tracks.append(track)
    return tracks


def pick_track(tracks, pick, source):
    """The track ``pick`` ("largest" or (x, y)) names; one line naming ``source`` when none does."""
    if not tracks:
        raise UserError(f"no face detected in any frame of {source}")
    if pick == "largest":
        return max(tracks, key=lambda track: (track.total_area, -track.number))
    holding = [(found, track) for track in tracks if (found := track.first_holding(pick)) is not None]
    if not holding:
        shown = "; ".join(track.described() for track in tracks[:5]) + ("; ..." if len(tracks) > 5 else "")
        raise UserError(f"--pick_face {pick[0]},{pick[1]}: no face found in {source} holds that pixel "
                        f"({len(tracks)} found: {shown})")
    return min(holding, key=lambda item: (item[0], item[1].number))[1]  # first seen there; the smaller box


def pick_box(boxes, pick):
    """The --box (top, bottom, left, right) that ``pick`` chooses among several."""
    as_xy = [(left, top, right, bottom) for top, bottom, left, right in boxes]
    if pick == "best":  # the reference: the last --box given
        return boxes[-1]
    if pick == "largest":
        return boxes[max(range(len(boxes)), key=lambda i: (box_area(as_xy[i]), -i))]
    holding = [i for i in range(len(boxes)) if holds(as_xy[i], pick)]
    if not holding:
        where = "the --box does not hold" if len(boxes) == 1 else f"none of the {len(boxes)} --box holds"
        raise UserError(f"--pick_face {pick[0]},{pick[1]}: {where} that pixel")
    return boxes[min(holding, key=lambda i: (box_area(as_xy[i]), i))]


def track_detections(track, ran, count):
    """The chosen track as the box planner takes detections: (boxes, status) for ``count``
    frames; FACE where the track was detected, NO_FACE where the detector ran without it,
    NOT_RUN where it did not run (``ran``: frame indices it ran on)."""
    boxes, status = np.zeros((count, 4)), np.full(count, NOT_RUN)
    status[[index for index in ran if index < count]] = NO_FACE
    for index, box in zip(track.frames, track.boxes):
        if index < count:
            boxes[index], status[index] = box, FACE
    return [tuple(box) for box in boxes], list(status)
