"""What a lip-sync run is asked to do (inference.py's flags), and the checks on it."""

import dataclasses
import itertools
from pathlib import Path

from face_detection.boxes import PAD_LIMIT
from hparams import hparams
from lipsync.face_tracks import parse_pick, pick_box
from lipsync.marking import check_label
from system.atomic_write import check_output
from system.errors import UserError, check_number, within

NO_BOX = (-1, -1, -1, -1)  # --box's default: detect the face

CHOICES = {
    "on_no_face": ("error", "interpolate", "skip"),
    "blend": ("paste", "feather"),
    "short_video": ("loop", "stretch", "error"),
    "precision": ("auto", "fp32", "fp16", "bf16"),
    "backend": ("torch", "onnxruntime"),
}

# What each numeric flag may be: (lowest, highest or None, whole number?). NaN and infinities never.
RANGES = {
    "fps": (1, 1000, False),  # of a still: one mel chunk per frame, so 1000 fps is 1000 generated frames a second
    "max_gap": (0, 60, False),  # seconds; a longer run without a face is a cut-away, and the planner waits this long
    "crf": (0, 51, True),  # x264's scale
    "face_det_batch_size": (1, None, True),
    "wav2lip_batch_size": (1, None, True),
    "resize_factor": (1, None, True),
    "det_stride": (1, None, True),
    "det_max_side": (32, None, True),  # pixels
}


@dataclasses.dataclass
class Options:
    """What inference.py's flags set; the defaults are the reference's. Boxes and crops are
    top, bottom, left, right in the frame after --resize_to, --resize_factor and --rotate."""

    checkpoint_path: str
    face: str
    audio: str
    outfile: str = "results/result_voice.mp4"
    static: bool = False
    fps: float = float(hparams.fps)  # of a still image: the frame rate the networks were trained at
    pads: tuple = (0, 10, 0, 0)  # top, bottom, left, right
    face_det_batch_size: int = 16
    wav2lip_batch_size: int = 128
    resize_factor: int = 1
    crop: tuple = (0, -1, 0, -1)  # top, bottom, left, right; -1: to the edge
    box: tuple = NO_BOX  # top, bottom, left, right: a fixed face box, no detection
    boxes: tuple = ()  # every --box when it is given more than once: --pick_face chooses one
    pick_face: str = "best"  # best | largest | X,Y | auto (lipsync/face_tracks.py)
    audios: tuple = ()  # every --audio when it is given more than once: one voice per face...
    pick_faces: tuple = ()  # ...each driving the face of the --pick_face X,Y given in the same place
    soundtrack: str = None  # the output's audio when it is not the voices' (dub.py: every speaker, the original)
    voice_names: tuple = ()  # what each of several voices is called in messages (its --audio; dub.py: a speaker)
    rotate: bool = False
    nosmooth: bool = False
    on_no_face: str = "interpolate"  # error | interpolate | skip
    max_gap: float = 0.5  # seconds: longest run of face-less frames that "interpolate" fills
    syncnet_checkpoint_path: str = None
    device: str = "auto"
    precision: str = "auto"  # auto (fp16 on CUDA, fp32 elsewhere) | fp32 | fp16 | bf16
    det_max_side: int = None
    det_stride: int = 1
    face_cache: str = None
    blend: str = "paste"  # paste | feather
    short_video: str = "loop"  # a video shorter than the audio: loop | stretch (repeat frames evenly) | error
    resize_to: tuple = ()  # (width, height) sizes each frame is resized to in turn, before resize_factor
    detector_path: str = None
    crf: int = 18
    preset: str = "veryfast"  # x264's: about 2.5x faster than "fast" at 720p, at a similar size for the same crf
    progress: bool = True  # bars and loading lines (--quiet: off)
    verbose: bool = False  # notes a normal run leaves out (the bf16 hint)
    unmarked: bool = False  # leave out the synthetic-media metadata (media/provenance.py)
    label: str = None  # visible text drawn in a corner of every frame
    label_corner: str = "bottom-right"
    label_size: float = 0.04  # text height, as a fraction of the frame height
    c2pa_cert: str = None  # certificate chain and private key (PEM) to sign C2PA content credentials with
    c2pa_key: str = None
    tool: str = "inference.py"  # the script named in the metadata
    synthetic_speech: tuple = ()  # (IPTC digital source type, synthesiser) when dub.py made the audio
    subtitles: tuple = ()  # (start s, end s, text) cues written as a soft subtitle track
    backend: str = "torch"  # torch | onnxruntime (the .onnx files export.py writes)
    generation_record: str = None  # test-set generation: what made the video (JSON), its "generation" metadata

    def __post_init__(self):
        for name in ("pads", "crop", "box", "resize_to"):  # lists from a parser: tuples, as the defaults
            setattr(self, name, tuple(getattr(self, name)))
        self.boxes = tuple(tuple(box) for box in self.boxes)
        self.audios, self.pick_faces = tuple(self.audios), tuple(self.pick_faces)
        self.voice_names = tuple(self.voice_names)
        self.audio = self.audios[0] if self.audios else self.audio  # the first of several stands for them all
        self.pick_face = self.pick_faces[0] if self.pick_faces else self.pick_face

    @classmethod
    def from_args(cls, args, **settings):
        """Options from parsed flags named as the fields are (--quiet turns progress off),
        then ``settings``."""
        fields = {field.name for field in dataclasses.fields(cls)}
        values = {name: value for name, value in vars(args).items() if name in fields}
        given = values.pop("box", None)
        if given and isinstance(given[0], (list, tuple)):  # --box taken once or more (action="append")
            cleared = [i for i, box in enumerate(given) if tuple(box) == NO_BOX]  # the reference's "no box"
            given = given[cleared[-1] + 1:] if cleared else given
            values["box"], values["boxes"] = (given[0], ()) if len(given) == 1 else (NO_BOX, tuple(given))
        elif given is not None:
            values["box"] = given
        for name, several in (("audio", "audios"), ("pick_face", "pick_faces")):  # action="append"
            given = values.pop(name, None)
            if isinstance(given, list):
                values[name], values[several] = given[0], tuple(given) if len(given) > 1 else ()
            elif given is not None:
                values[name] = given
        return cls(**{**values, "progress": not getattr(args, "quiet", False), **settings})

    @property
    def pick(self):
        """--pick_face: "best", "largest" or (x, y)."""
        return parse_pick(self.pick_face)

    @property
    def voices(self):
        """(audio, --pick_face) of each voice: the --audio and --pick_face, or each of several
        --audio with the --pick_face X,Y in the same place."""
        if self.audios:
            return list(zip(self.audios, self.pick_faces))
        return [(self.audio, self.pick_face)]

    @property
    def named_voices(self):
        """(name, --pick_face) of each voice: its voice_names entry, else its --audio."""
        names = self.voice_names or [path for path, _ in self.voices]
        return [(name, pick) for name, (_, pick) in zip(names, self.voices)]

    @property
    def fixed_box(self):
        """The --box as (y1, y2, x1, x2) (of several, the one --pick_face chooses, by default the
        last, as the reference took the last --box given), or None: detect faces."""
        # auto: whoever speaks; several voices: a face each (lipsync/tracked_boxes.py)
        if self.pick == "auto" or not self.given_boxes or self.audios:
            return None
        return tuple(pick_box(self.given_boxes, self.pick))

    @property
    def given_boxes(self):
        """Every --box given (top, bottom, left, right), or none: detect faces."""
        return self.boxes or ((tuple(self.box),) if self.box != NO_BOX else ())

    def check(self):
        """Refuse settings that cannot work, before anything is read."""
        self.check_values()
        self.check_backend()
        check_output(self.outfile, "--outfile", self.inputs())
        if self.syncnet_checkpoint_path:
            check_output(sync_json_path(self.outfile), "--outfile's .sync.json", self.inputs())

    def check_voices(self):
        """Several --audio: as many --pick_face X,Y, naming as many faces."""
        audios, picks = len(self.audios) or 1, len(self.pick_faces) or 1
        if picks > audios:
            raise UserError(f"--pick_face is given {picks} times for {'one' if audios == 1 else audios} --audio: one "
                            "face per voice (give an --audio for each --pick_face X,Y, in the same order)")
        if audios > picks:
            given = picks if self.pick_faces or self.pick_face != "best" else "no"  # "best": the default
            raise UserError(f"{audios} --audio but {given} --pick_face: each voice drives the face of the "
                            "--pick_face X,Y given in the same place (--pick_face X,Y once per --audio)")
        if not self.audios:
            return
        points = [parse_pick(pick) for _, pick in self.voices]
        named = [pick for pick in points if not isinstance(pick, tuple)]
        if named:
            raise UserError(f"--pick_face {named[0]} with several --audio: name each voice's face by a pixel of it, "
                            "--pick_face X,Y")
        if self.given_boxes:
            boxes = [pick_box(self.given_boxes, point) for point in points]
            for (a, b), (c, d) in itertools.combinations(zip(points, boxes), 2):
                if b == d:
                    raise UserError(f"--pick_face {a[0]},{a[1]} and --pick_face {c[0]},{c[1]} name the same --box "
                                    f"{' '.join(map(str, b))}: each voice needs a face of its own")

    def check_backend(self):
        """Refuse a backend that cannot run what is asked (onnxruntime: fp32, its .onnx file)."""
        if self.backend != "onnxruntime":
            return
        if self.precision not in ("auto", "fp32"):
            raise UserError(f"--backend onnxruntime runs the exported fp32 networks: --precision {self.precision} "
                            "is for --backend torch")
        if Path(self.checkpoint_path).suffix != ".onnx" and not Path(self.generator_weights()).is_file():
            raise UserError(f"Wav2Lip as ONNX not found at {self.generator_weights()} (--backend onnxruntime "
                            f"reads the .onnx beside --checkpoint_path): python export.py {self.checkpoint_path} "
                            "writes it")

    def check_values(self):
        """Refuse flag values that cannot work, each in one line naming the flag and the value
        (what they name is not looked at)."""
        if len(self.pads) != 4 or len(self.crop) != 4 or not all(len(box) == 4 for box in (self.box, *self.boxes)):
            raise UserError("--pads, --crop and --box take four numbers: top bottom left right")
        self.check_voices()
        pick = self.pick
        if pick != "best" and self.face_cache:
            raise UserError(f"--face_cache keeps the best face of each frame: it does not go with --pick_face "
                            f"{self.pick_face}")
        if pick not in ("best", "auto") and self.given_boxes:
            for _, point in self.voices:
                pick_box(self.given_boxes, parse_pick(point))  # the point is in a box
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise UserError(f"--{name} must be one of {', '.join(allowed)}, not {getattr(self, name)!r}")
        _check_numbers(self)
        if self.label is not None:
            check_label(self.label, self.label_corner, self.label_size)
        if (self.c2pa_cert is None) != (self.c2pa_key is None):
            raise UserError("--c2pa_cert and --c2pa_key go together: the certificate chain and its private key")
        if self.c2pa_cert is not None and self.unmarked:
            raise UserError("--unmarked and --c2pa_cert contradict each other: content credentials mark the video")

    def inputs(self):
        """{flag: path} of every file the run reads: no output may replace one (atomic_write.reading)."""
        detecting = not self.given_boxes
        audios = {f"--audio (voice {n})": path for n, path in enumerate(self.audios, 1)} or {"--audio": self.audio}
        return {"--checkpoint_path": self.generator_weights(), "--face": self.face, **audios,
                "--soundtrack": self.soundtrack,
                "--syncnet_checkpoint_path": self.syncnet_checkpoint_path,
                "--detector_checkpoint_path": self.detector_weights() if detecting else None,
                "--c2pa_cert": self.c2pa_cert, "--c2pa_key": self.c2pa_key}

    def frame_size(self, width, height):
        """(width, height) of the frames the pipeline works on, for a width x height input;
        checks that --crop and --box fit them."""
        if self.resize_to:
            width, height = self.resize_to[-1]
        if self.resize_factor > 1:
            width, height = width // self.resize_factor, height // self.resize_factor
        if self.rotate:
            width, height = height, width
        y1, y2, x1, x2 = self.crop
        y2, x2 = height if y2 == -1 else y2, width if x2 == -1 else x2
        steps = [f"--resize_factor {self.resize_factor}"] * (self.resize_factor > 1) + ["--rotate"] * self.rotate
        _check_region("--crop", self.crop, (y1, y2, x1, x2), width, height, steps)
        width, height = x2 - x1, y2 - y1
        steps += [f"--crop {' '.join(map(str, self.crop))}"] * (self.crop != (0, -1, 0, -1))
        for point in (parse_pick(pick) for _, pick in self.voices):
            if isinstance(point, tuple) and not (point[0] < width and point[1] < height):
                made = f" after {', '.join(steps)}" if steps else ""
                raise UserError(f"--pick_face {point[0]},{point[1]} lies outside the {width}x{height} frame{made} "
                                "(X,Y: a pixel of the face, as --box counts them)")
        for box in self.given_boxes:  # the reference does not clip a fixed box
            _check_region("--box", box, box, width, height, steps)
        return width, height

    def generator_weights(self):
        """The generator's file: --checkpoint_path; for onnxruntime the .onnx beside it, where
        export.py writes it (wav2lip.pth -> wav2lip.onnx), as for S3FD."""
        path = Path(self.checkpoint_path)
        return str(path.with_suffix(".onnx") if self.backend == "onnxruntime" else path)

    def detector_weights(self):
        """The S3FD file: --detector_checkpoint_path, or the default place; for onnxruntime the
        .onnx beside it, where export.py writes it (s3fd.pth -> s3fd.onnx)."""
        from face_detection.detect import DEFAULT_WEIGHTS  # noqa: PLC0415 - torch only when detecting

        path = Path(self.detector_path) if self.detector_path else DEFAULT_WEIGHTS
        return str(path.with_suffix(".onnx") if self.backend == "onnxruntime" else path)

    def detection_settings(self, device):
        """Every setting that changes what the detector sees or says (the face cache's key)."""
        from face_detection.loading import fingerprint  # noqa: PLC0415 - torch only when detecting

        return {"resize_factor": self.resize_factor, "rotate": self.rotate, "crop": list(self.crop),
                "det_max_side": self.det_max_side, "det_stride": self.det_stride, "batch": self.face_det_batch_size,
                "device": getattr(device, "type", device), "precision": self.precision,
                "weights": fingerprint(self.detector_weights())}


def sync_json_path(outfile):
    """Where --syncnet_checkpoint_path's per-chunk similarities go: OUTFILE.sync.json, beside
    the output (result.mp4 -> result.mp4.sync.json: two outputs of one stem never share it)."""
    outfile = Path(outfile)
    return outfile.with_name(outfile.name + ".sync.json")


def _check_numbers(options):
    """Every numeric flag of ``options`` in its range (RANGES; the pads within PAD_LIMIT; a
    --box of four positions)."""
    for name, (low, high, whole) in RANGES.items():
        if getattr(options, name) is not None:  # det_max_side: None is off
            check_number(f"--{name}", getattr(options, name), low, high, whole)
    if not all(within(value, -PAD_LIMIT, PAD_LIMIT) for value in options.pads):
        raise UserError(f"--pads must be whole numbers from {-PAD_LIMIT} to {PAD_LIMIT}, "
                        f"not {' '.join(map(str, options.pads))}")
    for box in options.given_boxes:
        if min(box) < 0:
            raise UserError(f"--box {' '.join(map(str, box))}: give four pixel positions, 0 or more "
                            "(top bottom left right), or leave --box out to detect the face")


def _check_region(flag, given, region, width, height, steps=()):
    """``region`` (y1, y2, x1, x2) must lie in the width x height frame that ``steps`` made."""
    y1, y2, x1, x2 = region
    if not (0 <= y1 < y2 <= height and 0 <= x1 < x2 <= width):
        made = f" after {', '.join(steps)}" if steps else ""
        raise UserError(f"{flag} {' '.join(map(str, given))} does not fit in the {width}x{height} frame{made} "
                        "(top bottom left right, 0 <= top < bottom <= height, 0 <= left < right <= width)")
