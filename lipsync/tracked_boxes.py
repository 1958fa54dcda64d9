"""--pick_face largest, X,Y or auto: the boxes of one face among several, followed from frame to
frame (or, with auto, one of several --box at a time); with several voices, of one face per voice.

S3FD finds every face in a first pass over the output's frames (every --det_stride'th), the
faces are linked into tracks (face_tracks), and the chosen track's boxes are planned as the
one face's are (pads, gaps, smoothing); frames without it pass through. With ``auto`` the
choice changes with whoever speaks in the video's own audio (speakers): each turn is
planned on its own, and frames where nobody speaks pass through.
"""

import itertools

from lipsync.box_planning import NoFaceError
from lipsync.face_detections import FaceCounts, box_planner, detect_faces
from lipsync.face_tracks import link_tracks, parse_pick, pick_track, track_detections
from lipsync.heap import trim_heap
from lipsync.progress import frame_bar
from system.errors import UserError
from system.progress import counted, say


class TrackedBoxes:
    detects = False  # its detection is over before the generator starts

    def __init__(self, detector, options, source, device, total):
        self.detector, self.options, self.source, self.device, self.total = detector, options, source, device, total
        self._counts = FaceCounts()  # once the frames are out

    def boxed_frames(self, frames, total):
        """(index, frame, box), or with several voices (index, frame, a box per voice)."""
        detections = self._detect_all()
        count = len(detections)
        tracks = link_tracks(detections)
        ran = [index for index, found in enumerate(detections) if found is not None]
        plans, detected, filled, voice_turns = [], 0, 0, self._voice_turns(tracks, count)
        for turns in voice_turns:
            boxes = [None] * count
            for track, start, stop in turns:
                found = self._plan(track, start, stop, ran, boxes)
                detected, filled = detected + found[0], filled + found[1]
            plans.append(boxes)
        boxed = [i for i in range(count) if any(plan[i] is not None for plan in plans)]
        if len(plans) > 1 and self.detector is not None:  # counted in frames: one where any face was detected
            seen = {i for turns in voice_turns for track, start, stop in turns for i in track.frames if start <= i < stop}
            detected = sum(i in seen for i in boxed)
            filled = len(boxed) - detected
        self._counts = FaceCounts(detected, filled, count - len(boxed))
        for index, frame in zip(range(count), frames):
            yield index, frame, tuple(plan[index] for plan in plans) if len(plans) > 1 else plans[0][index]

    def _voice_turns(self, tracks, count):
        """Per voice, the (track, start, stop) turns its face is lip-synced in."""
        o, described = self.options, self.source.described
        if o.pick == "auto":
            from lipsync.speakers import speaking_turns  # noqa: PLC0415 - the expert, only for auto

            turns = speaking_turns(o, self.source, tracks, count, self.device, self.detector is not None)
            if turns is not None:
                return [turns]
        chosen = [pick_track(tracks, "largest" if pick == "auto" else parse_pick(pick), described)
                  for _, pick in o.voices]
        for (a, first), (b, second) in itertools.combinations(zip(o.voices, chosen), 2):
            if first is second:
                raise UserError(f"--pick_face {a[1]} and --pick_face {b[1]} both name {first.described()} in "
                                f"{described}: each voice needs a face of its own")
        faces = [track.described() + (f" to {name}" if len(chosen) > 1 else "")
                 for (name, _), track in zip(o.named_voices, chosen)]
        say(f"{counted(len(tracks), 'face')} found in {described}; lip-syncing {', '.join(faces)}", o.progress)
        return [[(track, 0, count)] for track in chosen]

    def counts(self):
        return self._counts

    def _plan(self, track, start, stop, ran, boxes):
        """The planned boxes of ``track`` over frames [start, stop) into ``boxes``; returns the
        frames with a detection and those given a box from their neighbours."""
        if self.detector is None:  # a --box: as given, no pads, no smoothing
            x1, y1, x2, y2 = (int(v) for v in track.boxes[0])
            boxes[start:stop] = [(y1, y2, x1, x2)] * (stop - start)
            return 0, 0
        # A chosen face may leave the picture: frames without it pass through rather than stop the run.
        planner = box_planner(self.options, self.source, on_no_face="skip" if self.options.on_no_face == "error"
                              else None)
        # Outside the face's span (its first to last detection, and the frames beside them the
        # detector skipped) it is not there: those frames stay untouched, whatever --on_no_face says
        start = max(start, max((index + 1 for index in ran if index < track.frames[0]), default=0))
        stop = min(stop, min((index for index in ran if index > track.frames[-1]), default=stop))
        if start >= stop:
            return 0, 0
        found, status = track_detections(track, ran, stop)
        try:
            planner.add(found[start:stop], status[start:stop])
            planner.finish()
        except NoFaceError:  # a turn in which the face was never detected itself: left untouched
            if self.options.pick != "auto":
                raise
            return 0, 0
        for index in range(start, stop):
            boxes[index] = planner.box(index - start)
        return planner.counts()[:2]

    def _detect_all(self):
        """Every face of every --det_stride'th frame of the output's first pass: None where not run
        (the --box given, in every frame, when there is no detector)."""
        o, detections, block = self.options, [], []
        if self.detector is None:
            given = [(left, top, right, bottom) for top, bottom, left, right in o.given_boxes]
            if o.pick != "auto":  # the same boxes in every frame: no pass over the video to count them
                return [given] * self.total
            return [given for _ in zip(range(self.total), self.source.frames())]
        count = min(self.total, self.source.frame_count)
        with frame_bar("face detection", -(-count // o.det_stride), o.progress) as bar:
            self.detector.on_frames_done = bar.update
            try:
                for index, frame in zip(range(self.total), self.source.frames()):
                    detections.append(None)
                    if index % o.det_stride == 0:
                        block.append((index, frame))
                    if len(block) == o.face_det_batch_size:
                        self._detect_block(block, detections)
                if block:
                    self._detect_block(block, detections)
            finally:
                self.detector.on_frames_done = None
        return detections

    def _detect_block(self, block, detections):
        found = detect_faces(self.detector, [frame for _, frame in block], self.options, self.source.frame_size,
                             self.device, every_face=True)
        for (index, _), faces in zip(block, found):
            detections[index] = faces
        block.clear()
        trim_heap()
