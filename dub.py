"""Dub a talking-face video: text or (translated) subtitles -> offline speech -> lip-synced video.

    python dub.py --checkpoint_path checkpoints/wav2lip_gan.pth --face video.mp4 --subtitles talk.es.srt --voice es

The speech is synthesised offline (eSpeak NG), each subtitle cue spoken from its start time,
the video lip-synced to it with inference.py's pipeline (all its flags apply), and the result
marked as synthetic in picture and sound. The work is done by ``dubbing.dub.dub``.
"""

import sys

import system  # noqa: F401 - first of all: Ctrl-C while the rest imports ends in one line (system/startup.py)
from dubbing.dub import Speaking, dub
from lipsync import Options
from lipsync.command_line import add_lipsync_flags, report
from system.cli import run
from system.flags import argument_parser


def build_parser():
    p = argument_parser(__doc__)
    speech = p.add_argument_group("speech")
    source = speech.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="what the speaker should say")
    source.add_argument("--text_file", metavar="FILE", help="a UTF-8 text file of what the speaker should say")
    source.add_argument("--subtitles", metavar="FILE", help="an .srt or .vtt file: each cue is spoken from its start time")
    speech.add_argument("--engine", default="espeak", help="speech synthesiser (espeak: offline, about 100 languages)")
    speech.add_argument("--voice", default="en", help="the engine's voice; for espeak a language code: en, es, hi, ja, ...")
    speech.add_argument("--speech_rate", type=float, default=1.0, help="speaking rate, as a multiple of the voice's own")
    speech.add_argument("--pitch", type=float, default=50, help="voice pitch, 0-100 (50: the voice's own)")
    speech.add_argument("--max_speedup", type=float, default=1.3,
                        help="speech longer than its cue is sped up (pitch kept) by at most this; beyond it, it runs "
                             "on into the following silence and later cues are delayed")
    speech.add_argument("--original_audio", choices=["mute", "duck"], default="mute",
                        help="the video's own soundtrack: left out, or kept under the speech, lowered while it plays")
    speech.add_argument("--duck_db", type=float, default=12.0, help="how far --original_audio duck lowers it, in dB")
    speech.add_argument("--speaker_face", action="append", metavar="NAME=X,Y",
                        help="a dialogue: the cues of speaker NAME (WebVTT's <v NAME>, or 'NAME: ...' starting a cue) "
                             "move the face holding pixel X,Y (as --pick_face counts it), in their own voice; given "
                             "once per speaker. Cues of speakers without a face are spoken but move no mouth")
    speech.add_argument("--speaker_voice", action="append", metavar="NAME=VOICE",
                        help="the voice speaker NAME's cues are spoken in (the others: --voice); given once per speaker")
    speech.add_argument("--no_subtitle_track", dest="subtitle_track", action="store_false",
                        help="do not put the --subtitles cues into the mp4 as a soft subtitle track")
    add_lipsync_flags(p, audio=False, outfile="results/dubbed.mp4")
    return p


def main(argv):
    args = build_parser().parse_args(argv)
    speaking = Speaking.from_args(args)
    options = Options.from_args(args, audio="")
    summary = dub(speaking, options, notes=lambda line: print(f"warning: {line}", file=sys.stderr))
    report(summary, options)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
