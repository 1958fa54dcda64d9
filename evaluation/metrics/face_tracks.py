"""Face tracks in real-world videos, cropped as syncnet_python's pipeline crops them for LSE.

In the wild a video holds cuts, several people and faces that come and go, so LSE is computed
per face track: S3FD finds the faces (on frames scaled by 0.25, score >= 0.9), a track follows
one face while consecutive boxes overlap (IoU > 0.5, at most 25 frames missed), and a new one
starts at a scene cut or when the face jumps. Tracks of at least 100 frames whose face is over
100 pixels are kept; their boxes are interpolated over misses, median-smoothed over 13 frames
and widened to take in the chin (crop scale 0.4), each crop resized to 224 x 224.
"""

import dataclasses
import itertools
import warnings

import cv2
import numpy as np
from scipy.signal import medfilt

import audio
from evaluation.metrics.lse import AUDIO_RATE, SAMPLES_PER_FRAME, VIDEO_FPS
from face_detection import kept_boxes
from face_detection.boxes import clip_to_frame, iou
from media.containers import read_frames

DETECTION_SCALE = 0.25
MIN_SCORE = 0.9
SCENE_THRESHOLD = 30.0  # PySceneDetect's content detector: mean HSV change between frames
MIN_SCENE = 15  # frames
IOU_THRESHOLD = 0.5
MAX_MISSED = 25  # frames
MIN_TRACK = 100  # frames
MIN_FACE_SIZE = 100  # pixels
CROP_SCALE = 0.4
SMOOTHING = 13  # frames, median filter
PAD_VALUE = 110
CROP_SIZE = 224


class SceneCuts:
    """Feed frames in order; ``is_cut(frame)`` says whether a new scene starts at it."""

    def __init__(self, threshold=SCENE_THRESHOLD, min_scene=MIN_SCENE):
        self.threshold, self.min_scene = threshold, min_scene
        self.previous, self.since_cut = None, 0

    def is_cut(self, frame_bgr):
        hsv = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2HSV).astype(np.int16)
        change = None if self.previous is None else np.abs(hsv - self.previous).mean()
        self.previous, self.since_cut = hsv, self.since_cut + 1
        if change is not None and change >= self.threshold and self.since_cut > self.min_scene:
            self.since_cut = 0
            return True
        return False


def detect_faces(detector, frames_bgr, scale=DETECTION_SCALE, min_score=MIN_SCORE):
    """Per frame, the (k, 4) boxes [x1, y1, x2, y2] of the faces S3FD finds, in full-frame pixels.

    Boxes are clipped to the frame and those left without area dropped: a garbage detection
    (boxes far outside the frame, NaN) would otherwise ask the cropper for a border of
    gigabytes.
    """
    small = np.stack([cv2.resize(frame, None, fx=scale, fy=scale) for frame in frames_bgr])
    found = detector.detect(small, select=kept_boxes)
    height, width = frames_bgr[0].shape[:2]
    return [clip_to_frame(boxes[boxes[:, 4] >= min_score, :4].astype(np.float64) / scale, width, height)
            for boxes in found]


@dataclasses.dataclass
class Track:
    frames: np.ndarray  # consecutive frame indices
    boxes: np.ndarray  # (len(frames), 4), interpolated over missed frames

    @property
    def first(self):
        return int(self.frames[0])

    @property
    def last(self):
        return int(self.frames[-1])


def build_tracks(faces, scene_starts, min_track=MIN_TRACK, min_face_size=MIN_FACE_SIZE):
    """Tracks from per-frame face boxes, never across a scene start (frame indices)."""
    bounds = sorted(set(scene_starts) | {0, len(faces)})
    tracks = []
    for start, stop in itertools.pairwise(bounds):
        left = [(index, list(faces[index])) for index in range(start, stop)]
        while True:
            track = []
            for index, boxes in left:
                for j, box in enumerate(boxes):
                    if not track or (index - track[-1][0] <= MAX_MISSED and iou(box, track[-1][1]) > IOU_THRESHOLD):
                        track.append((index, box))
                        del boxes[j]
                        break
                else:
                    if track and index - track[-1][0] > MAX_MISSED:
                        break
            if not track:
                break
            if len(track) <= min_track:
                continue
            seen = np.array([index for index, _ in track])
            frames = np.arange(seen[0], seen[-1] + 1)
            boxes = np.stack([np.interp(frames, seen, [box[k] for _, box in track]) for k in range(4)], axis=1)
            size = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]).mean()
            if size > min_face_size:
                tracks.append(Track(frames, boxes))
    return tracks


class TrackCropper:
    """Crops one track's frames as syncnet_python does: a square around the smoothed face,
    reaching down past the chin, on a frame padded with grey."""

    def __init__(self, track, crop_scale=CROP_SCALE):
        boxes = track.boxes
        with warnings.catch_warnings():  # a track shorter than the kernel (--min_track < 13) is zero-padded
            warnings.simplefilter("ignore")
            self.half = medfilt(np.maximum(boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]) / 2, SMOOTHING)
            self.cy = medfilt((boxes[:, 1] + boxes[:, 3]) / 2, SMOOTHING)
            self.cx = medfilt((boxes[:, 0] + boxes[:, 2]) / 2, SMOOTHING)
        self.track, self.scale = track, crop_scale

    def crop(self, index, frame_bgr):
        k = index - self.track.first
        bs, cs = self.half[k], self.scale
        pad = int(bs * (1 + 2 * cs))
        padded = cv2.copyMakeBorder(frame_bgr, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
        my, mx = self.cy[k] + pad, self.cx[k] + pad
        face = padded[int(my - bs):int(my + bs * (1 + 2 * cs)), int(mx - bs * (1 + cs)):int(mx + bs * (1 + cs))]
        return cv2.resize(face, (CROP_SIZE, CROP_SIZE))


def find_tracks(video, detector, batch_size=16, min_track=MIN_TRACK, min_face_size=MIN_FACE_SIZE):
    """The face tracks of a video read at 25 fps (one pass; only boxes are kept)."""
    cuts, starts, faces, block = SceneCuts(), [], [], []
    for index, frame in enumerate(read_frames(video, fps=VIDEO_FPS)):
        if cuts.is_cut(frame):
            starts.append(index)
        block.append(frame)
        if len(block) == batch_size:
            faces.extend(detect_faces(detector, block))
            block = []
    if block:
        faces.extend(detect_faces(detector, block))
    return build_tracks(faces, starts, min_track, min_face_size)


def score_tracks(video, tracks, scorer):
    """(track, SyncScore) for each track: its crops against the audio of the same frames.

    A second pass over the video; a track's crops are held only until its last frame.
    """
    wav = audio.load_wav(video, AUDIO_RATE)
    cropping = [(track, TrackCropper(track), []) for track in tracks]
    results = []
    last = max((track.last for track in tracks), default=-1)
    for index, frame in enumerate(read_frames(video, fps=VIDEO_FPS)):
        if index > last:
            break
        for track, cropper, crops in cropping:
            if track.first <= index <= track.last:
                crops.append(cropper.crop(index, frame))
            if index == track.last:
                segment = wav[track.first * SAMPLES_PER_FRAME:(track.last + 1) * SAMPLES_PER_FRAME]
                results.append((track, scorer.score(crops, segment)))
                crops.clear()
    return results
