"""--pick_face largest, X,Y or auto: the boxes of one face among several, followed from frame to
frame (or, with auto, one of several --box at a time).

S3FD finds every face in a first pass over the output's frames (every --det_stride'th), the
faces are linked into tracks (face_tracks), and the chosen track's boxes are planned as the
one face's are (pads, gaps, smoothing); frames without it pass through. With ``auto`` the
choice changes with whoever speaks in the video's own audio (speakers): each turn is
planned on its own, and frames where nobody speaks pass through.
"""

import itertools

from lipsync.box_planning import NoFaceError
from lipsync.face_detections import FaceCounts, box_planner, detect_faces
from lipsync.face_tracks import link_tracks, pick_track, track_detections
from lipsync.heap import trim_heap
from lipsync.progress import frame_bar
from system.errors import UserError
from system.progress import counted, loading, say


class TrackedBoxes:
    detects = False  # its detection is over before the generator starts

    def __init__(self, detector, options, source, device, total):
        self.detector, self.options, self.source, self.device, self.total = detector, options, source, device, total
        self._counts = FaceCounts()  # once the frames are out

    def boxed_frames(self, frames, total):
        detections = self._detect_all()
        o, count = self.options, len(detections)
        tracks = link_tracks(detections)
        ran = [index for index, found in enumerate(detections) if found is not None]
        turns = self._turns(tracks, count) if o.pick == "auto" else None
        if turns is None:
            track = pick_track(tracks, "largest" if o.pick == "auto" else o.pick, self.source.described)
            say(f"{counted(len(tracks), 'face')} found in {self.source.described}; lip-syncing {track.described()}",
                o.progress)
            turns = [(track, 0, count)]
        boxes, detected, filled = [None] * count, 0, 0
        for track, start, stop in turns:
            found = self._plan(track, start, stop, ran, boxes)
            detected, filled = detected + found[0], filled + found[1]
        self._counts = FaceCounts(detected, filled, sum(box is None for box in boxes))
        for index, frame in zip(range(count), frames):
            yield index, frame, boxes[index]

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

    def _turns(self, tracks, count):
        """(track, start, stop) of each turn with --pick_face auto, or None: take the largest."""
        from lipsync.speakers import choose_speakers, own_audio, speaker_scores  # noqa: PLC0415
        from lipsync.sync_similarity import SyncSimilarity  # noqa: PLC0415

        o, source = self.options, self.source
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
        similarity = SyncSimilarity(o.syncnet_checkpoint_path, self.device)
        pads = o.pads if self.detector is not None else (0, 0, 0, 0)  # a --box is the crop itself
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

    def _detect_all(self):
        """Every face of every --det_stride'th frame of the output's first pass: None where not run
        (the --box given, in every frame, when there is no detector)."""
        o, detections, block = self.options, [], []
        if self.detector is None:
            given = [(left, top, right, bottom) for top, bottom, left, right in o.given_boxes]
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
