"""Lip-sync a face to speech as it is spoken: audio from a file (read at the pace it is
spoken) or standard input (raw PCM), the stream written to an mp4 as it goes.

    python stream.py --checkpoint_path checkpoints/wav2lip_gan.pth --face face.mp4 --audio speech.wav
    arecord -f S16_LE -r 16000 -c 1 | python stream.py --checkpoint_path ... --face face.jpg --audio -

The flags are inference.py's, and the stream's own; the work is done by
``lipsync.stream_run.stream_to_file`` over ``lipsync.stream.LipSyncStream``.
"""

import sys

import system  # noqa: F401 - first of all: Ctrl-C while the rest imports ends in one line (system/startup.py)
from lipsync import Options
from lipsync.command_line import add_lipsync_flags, add_stream_flags, check_stream_flags
from system.cli import run
from system.errors import UserError, check_number
from system.flags import argument_parser


def build_parser():
    p = argument_parser(__doc__)
    add_lipsync_flags(p, audio=False, outfile="results/stream.mp4")
    stream = p.add_argument_group("the stream")
    stream.add_argument("--audio", required=True, action="append",
                        help="speech (one voice): any file with an audio track, pushed at the pace it is spoken; or - for raw "
                             "signed 16-bit little-endian mono PCM on standard input, at --audio_rate")
    stream.add_argument("--audio_rate", type=int, default=16000, help="sample rate of the raw PCM of --audio -")
    stream.add_argument("--offline", action="store_true",
                        help="push the audio as fast as it is read and wait for every frame (with --silence_db=-inf: "
                             "the frames inference.py draws, bit for bit before encoding); without it, frames leave on the clock, idle when "
                             "drawn too late")
    add_stream_flags(stream)
    return p


def main(argv):
    args = build_parser().parse_args(argv)
    from lipsync.stream_run import file_chunks, stdin_chunks, stream_to_file  # noqa: PLC0415 - after --help

    check_number("--audio_rate", args.audio_rate, 1, whole=True)
    check_stream_flags(args)
    if len(args.audio) > 1:
        raise UserError(f"--audio is given {len(args.audio)} times: a stream lip-syncs one voice (inference.py takes "
                        "a voice per face)")
    args.audio = args.audio[0]
    options = Options.from_args(args, audio="" if args.audio == "-" else args.audio)
    chunks = stdin_chunks(args.audio_rate) if args.audio == "-" else file_chunks(args.audio)
    summary = stream_to_file(options, chunks, realtime=not args.offline, paced=args.audio != "-" and not args.offline,
                             silence_db=args.silence_db, delay=args.delay)
    print(f"Wrote {summary.outfile}: {summary.line()}, {summary.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
