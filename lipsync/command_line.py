"""inference.py's command line, shared with dub.py: its flags, and the lines that report a run.
The flags the test-set generation scripts share with inference.py are declared here once
(add_checkpoint_flag, add_pads_flag, add_batch_size_flags, add_no_face_flags): those scripts
pass the reference's defaults for their runs."""

import argparse
import sys

import numpy as np

from hparams import hparams
from lipsync.marking import add_marking_flags
from lipsync.options import CHOICES
from lipsync.pipeline import sync_json_path
from media.provenance import unmarked_warning
from system.errors import UserError, check_number
from system.flags import (
    add_detector_flag,
    add_face_det_batch_flag,
    add_run_flags,
    add_wav2lip_batch_flag,
)

SIDES = ("TOP", "BOTTOM", "LEFT", "RIGHT")  # of a box: --pads, --crop, --box
NO_FACE = ("stop (the reference), take the box from the neighbouring frames for gaps up to --max_gap (longer gaps pass "
           "through untouched), or pass them through")


def _flag_or_bool(text):
    # The reference declared --static with type=bool, so "--static True" must keep working.
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")


def add_lipsync_flags(p, audio=True, outfile="results/result_voice.mp4"):
    """inference.py's flags (dub.py takes them all but --audio): the reference's, then the
    extra ones, then marking the output as synthetic."""
    add_checkpoint_flag(p)
    p.add_argument("--face", required=True, help="video or still image (.jpg .jpeg .png .webp .bmp, or recognised by content)")
    if audio:
        p.add_argument("--audio", required=True, action="append",
                       help="any file with an audio track (wav, mp3, m4a, a video, ...); given several times, one voice "
                            "per face: the n-th drives the face of the n-th --pick_face X,Y, and the output's sound is "
                            "the voices mixed")
    if outfile is not None:  # None: the script writes no file of its own (serve.py)
        p.add_argument("--outfile", default=outfile, help="output mp4 (H.264 + AAC)")
    p.add_argument("--static", type=_flag_or_bool, nargs="?", const=True, default=False,
                   help="use only the first frame of --face")
    p.add_argument("--fps", type=float, default=float(hparams.fps), help="frame rate of the output when --face is a still image")
    add_pads_flag(p)
    add_batch_size_flags(p)
    p.add_argument("--resize_factor", type=int, default=1, help="divide the frame size by this first (720p often works best)")
    p.add_argument("--crop", nargs=4, type=int, default=[0, -1, 0, -1], metavar=SIDES,
                   help="crop each frame to this region, in pixels of the frame after --resize_factor and --rotate; "
                        "-1: to the edge")
    p.add_argument("--box", nargs=4, type=int, action="append", metavar=SIDES,
                   help="a fixed face box for every frame (no detection, no pads, no smoothing), in pixels of the frame "
                        "after --resize_factor, --rotate and --crop; given several times, one box per face, of which "
                        "--pick_face chooses one; --box -1 -1 -1 -1 drops the boxes given before it (default: detect "
                        "the face)")
    p.add_argument("--rotate", action="store_true", help="rotate frames 90 degrees clockwise (after --resize_factor)")
    p.add_argument("--nosmooth", action="store_true", help="do not average face boxes over 5 frames")
    _add_extra_flags(p.add_argument_group("beyond the reference"), voices=audio)
    add_marking_flags(p)


def add_checkpoint_flag(p):
    p.add_argument("--checkpoint_path", required=True, help="Wav2Lip generator checkpoint (wav2lip.pth or wav2lip_gan.pth)")


def add_pads_flag(p, default=(0, 10, 0, 0), note=" (include the chin: bottom >= 10)"):
    """--pads; ``note`` ends its help (advice that goes with the default)."""
    p.add_argument("--pads", nargs=4, type=int, default=list(default), metavar=SIDES,
                   help="padding added to each detected face box" + note)


def add_batch_size_flags(p):
    add_face_det_batch_flag(p)
    add_wav2lip_batch_flag(p)


def add_no_face_flags(p, default="interpolate", choices_mean=NO_FACE):
    """--on_no_face and --max_gap; ``choices_mean`` says what --on_no_face's choices do in the script."""
    p.add_argument("--on_no_face", choices=CHOICES["on_no_face"], default=default,
                   help=f"frames where no face is found: {choices_mean}")
    p.add_argument("--max_gap", type=float, default=0.5, help="longest face-less gap, in seconds, that interpolate fills")


def add_stream_flags(group):
    """The stream's own flags (stream.py, serve.py)."""
    group.add_argument("--silence_db", type=float, default=-50.0,
                       help="a frame whose 200 ms of audio is quieter than this (dB below full scale) keeps the "
                            "face's own mouth")
    group.add_argument("--delay", type=float, default=None,
                       help="seconds from a frame's audio to its leaving the stream (default: the 212.5 ms the mel "
                            "window needs, plus 100 ms for the generator)")


def check_stream_flags(args):
    if args.delay is not None:
        check_number("--delay", args.delay, 0, 60)
    if args.pick_face and len(args.pick_face) > 1:
        raise UserError(f"--pick_face is given {len(args.pick_face)} times: a stream lip-syncs one face to one voice "
                        "(inference.py takes a face per --audio)")


def _add_extra_flags(extra, voices=True):
    add_no_face_flags(extra)
    extra.add_argument("--pick_face", action="append", metavar="best|largest|X,Y|auto",
                       help="with several faces in the picture, which one to lip-sync: best, the detector's best box "
                            "in each frame (the reference); largest, the face that takes up most of the video; X,Y, the "
                            "face whose box holds that pixel in the first frame where a box holds it (pixels as --box "
                            "counts them); auto, whoever speaks in the video's own audio, as --syncnet_checkpoint_path's "
                            "expert hears it. Faces are followed from frame to frame; frames without the chosen one pass "
                            "through (--on_no_face error too)" + (". Given once per --audio, X,Y each time: the faces "
                                                                  "those voices drive" if voices else "") +
                            " (default: best)")
    extra.add_argument("--syncnet_checkpoint_path",
                       help="expert SyncNet (lipsync_expert.pth): print how well the voice matches the face, before and "
                            "after, and write the per-chunk cosine similarities to OUTFILE.sync.json (for "
                            "result.mp4: result.mp4.sync.json)")
    extra.add_argument("--precision", choices=CHOICES["precision"], default="auto",
                       help="auto: fp16 on CUDA, fp32 on the CPU (exact); bf16 is about 2-3x faster on CPUs with native "
                            "bf16 (AMX, AVX-512 BF16) but changes pixels by about one grey level; fp16 runs on the CPU too, "
                            "slowly")
    extra.add_argument("--backend", choices=CHOICES["backend"], default="torch",
                       help="run the networks in PyTorch, or in onnxruntime from the .onnx files export.py writes "
                            "beside the weights (wav2lip.onnx for --checkpoint_path wav2lip.pth or .onnx; s3fd.onnx for S3FD); "
                            "onnxruntime starts without "
                            "importing PyTorch when --box is given")
    extra.add_argument("--det_max_side", type=int, default=None,
                       help="detect faces on a copy scaled down to at most this many pixels on its longer side "
                            "(faster; boxes become less precise, and small faces may be missed); without it, "
                            "faces are detected on the frames at their full size")
    extra.add_argument("--det_stride", type=int, default=1,
                       help="detect faces on every k-th frame only and interpolate the boxes in between "
                            "(about k times faster detection; boxes lag fast head motion)")
    extra.add_argument("--face_cache", metavar="DIR",
                       help="keep face detections in DIR, keyed by the video's content and the detection settings, "
                            "so that dubbing the same video again skips detection")
    extra.add_argument("--blend", choices=CHOICES["blend"], default="paste",
                       help="paste the generated box as the reference does, or feather it over the lower face to hide the seam")
    extra.add_argument("--short_video", choices=CHOICES["short_video"], default="loop",
                       help="a video shorter than the audio: loop it (the reference), stretch it by repeating frames "
                            "evenly, or stop")
    add_detector_flag(extra)
    extra.add_argument("--crf", type=int, default=18, help="H.264 quality (lower is better, 0-51)")
    extra.add_argument("--preset", default="veryfast",
                       choices=["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"],
                       help="x264 speed preset: slower ones make smaller files for the same --crf")
    add_run_flags(extra)


def report(summary, options):
    """Print what a finished run did: the output, the speed, the faces and the sync measured;
    and on stderr, when it is unmarked, a warning."""
    faces = f"faces detected in {summary.faces_detected} frames, filled in {summary.faces_filled}, " \
            f"{summary.passed_through} passed through"
    if options.given_boxes:  # no detection (auto among the boxes passes the quiet frames through)
        faces = "fixed --box" + (f", {summary.passed_through} frames passed through" if summary.passed_through else "")
    lines = [(f"Wrote {summary.outfile}: {summary.frames} frames in {summary.seconds:.1f} s "
              f"({summary.frames / max(summary.seconds, 1e-9):.1f} frames/s, {summary.generator}); {faces}; "
              f"face cache: {summary.cache}")]
    if summary.sync is not None:
        for voice in summary.sync.get("voices", [summary.sync]):  # several voices: each face's own
            whose = f" (face at {voice['pick_face']}, {voice['voice']})" if "voice" in voice else ""
            lines += [f"Voice/face sync of the input video{whose} (cosine similarity per chunk): "
                      f"{describe(voice['input'])}",
                      f"Voice/face sync of the result{whose}: {describe(voice['result'])}"]
        lines.append(f"Per-chunk values: {sync_json_path(options.outfile)}")
    print("\n".join(lines))
    if options.unmarked:
        print(unmarked_warning(summary.outfile), file=sys.stderr)


def describe(values):
    """scipy.stats.describe as text, or why there is nothing to describe."""
    if len(values) < 2:
        return f"{len(values)} window(s): too few frames with faces for a distribution"
    from scipy import stats  # noqa: PLC0415 - 0.8 s of imports, only when there are scores

    result = stats.describe(np.asarray(values, np.float64))
    low, high = (float(v) for v in result.minmax)
    return (f"DescribeResult(nobs={int(result.nobs)}, minmax=({low:.4f}, {high:.4f}), mean={float(result.mean):.4f}, "
            f"variance={float(result.variance):.3g}, skewness={float(result.skewness):.3f}, "
            f"kurtosis={float(result.kurtosis):.3f})")
