"""Write a synthetic talking-face corpus: cartoon speakers whose mouths follow what they say.

    python synthetic_corpus.py --out corpus_raw --layout raw            # LRS2-style mp4s
    python synthetic_corpus.py --out corpus --layout preprocessed       # face crops + audio.wav + filelists
    python synthetic_corpus.py --out corpus_shifted --av_offset_share 0.4 --av_offset_max 8   # 40 % out of sync
    python synthetic_corpus.py --out talks --layout conversation --people 2 --clips 4 --seconds 20   # who speaks when
    python synthetic_corpus.py --out corpus192 --face_size 192           # for 192-pixel networks

Raw clips are <out>/<speaker>/<clip>.mp4 (H.264 + AAC, 25 fps, 160x160) with the face inside
the box 16 144 16 144 (top bottom left right), which preprocess.py --box turns into the
preprocessed layout; --layout preprocessed writes that directly, with train/val/test
filelists split by speaker. What the speakers say and how: training/synthetic_data.py.

--face_size 192 (or 384) draws the same speakers saying the same things at twice (three
times) the size, 320x320 frames with the face in 32 288 32 288, for networks of that face
size: the face crops are then 256 (384) pixels, and the mouths have lip creases, gaps between
the teeth, lower teeth and a tongue, drawn a pixel or two wide, which a 96-pixel crop loses.

--av_offset_share S moves the sound of that share of the clips against the picture by a whole
number of frames in -K..-1 or 1..K (K: --av_offset_max), the clip's length kept, and writes
each clip's offset (LSE's sign: audio d frames late is -d; 0 in sync) to <out>/av_offsets.csv,
the truth a sync audit (sync_audit.py) can be measured against.

--layout conversation writes --clips scenes of --people speakers side by side taking turns,
<out>/conversationNNN.mp4 (160 pixels high, 160 wide per person; person i's face inside the box
16 144 16+160i 144+160i), each with the truth of who speaks when beside it,
conversationNNN.speakers.csv (training/synthetic_conversations.py).
"""

import sys
from pathlib import Path

import system  # noqa: F401 - first of all: Ctrl-C while the rest imports ends in one line (system/startup.py)
from system import cli, flags
from system.atomic_write import check_output, check_writable
from system.errors import UserError, check_number
from training.dataset import MIN_FRAMES, SPLITS
from training.synthetic_conversations import make_conversations
from training.synthetic_data import FPS, OFFSETS_FILE, SCALES, make_corpus


def build_parser():
    parser = flags.argument_parser(__doc__)
    parser.add_argument("--out", required=True, help="folder to write the corpus to")
    parser.add_argument("--layout", choices=["raw", "preprocessed", "conversation"], default="preprocessed",
                        help="raw: LRS2-style <speaker>/<clip>.mp4; preprocessed: face crops + audio.wav + filelists; "
                             "conversation: scenes of --people speakers taking turns, with who speaks when")
    parser.add_argument("--speakers", type=int, default=24, help="cartoon speakers, each with their own face and voice")
    parser.add_argument("--clips", type=int, default=6, help="clips per speaker (conversation: scenes)")
    parser.add_argument("--people", type=int, default=2, help="speakers in each scene of the conversation layout (2 or 3)")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each clip")
    parser.add_argument("--face_size", type=int, choices=sorted(SCALES), default=96,
                        help="the networks' face size the corpus is for: frames drawn large enough for it "
                             "(faces of 128, 256, 384 pixels), with lip creases, teeth and tongue from 192 on")
    flags.add_seed_flag(parser, help="seeds the speakers and what they say, so that a rerun writes the same corpus")
    flags.add_filelist_dir_flag(parser, help="where the preprocessed layout's filelists go (default: <out>/filelists)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing filelists in --filelist_dir")
    parser.add_argument("--av_offset_share", type=float, default=0.0,
                        help="share of the clips (0 to 1) whose sound is moved against the picture; the offsets go "
                             "to <out>/av_offsets.csv")
    parser.add_argument("--av_offset_max", type=int, default=8,
                        help="most frames the sound of an out-of-sync clip is moved by (each by 1 to this many, "
                             "late or early)")
    flags.add_verbose_flag(parser)
    return parser


def main(argv):
    args = build_parser().parse_args(argv)
    check_number("--seconds", args.seconds, 0, 3600)
    check_number("--speakers", args.speakers, 1, whole=True)
    check_number("--clips", args.clips, 1, whole=True)
    check_number("--seed", args.seed, 0, 2**32 - 1, whole=True)
    if args.seconds * FPS <= MIN_FRAMES + 1:
        raise UserError(f"--seconds {args.seconds} gives too few frames for training (need > {MIN_FRAMES + 1})")
    check_number("--av_offset_share", args.av_offset_share, 0, 1)
    if args.av_offset_share > 0:
        check_number("--av_offset_max", args.av_offset_max, 1, int(args.seconds * FPS) - MIN_FRAMES - 1, whole=True)
    if args.layout == "conversation":
        if args.face_size != 96:
            raise UserError("--face_size is for the raw and preprocessed layouts; conversations are drawn for 96")
        check_number("--people", args.people, 2, 3, whole=True)
        check_writable(args.out)
        paths = make_conversations(args.out, args.clips, args.people, args.seconds, args.seed, progress=True)
        print(f"wrote {len(paths)} conversations of {args.people} people to {args.out}; who speaks when: "
              f"{paths[0].with_suffix('.speakers.csv').name} and the others beside them")
        return 0
    for folder in (args.out, args.filelist_dir):
        if folder:
            check_writable(folder)
    if args.layout == "preprocessed":  # the lists are written last: refuse a bad one before the work
        for split in SPLITS:
            check_output(Path(args.filelist_dir or Path(args.out) / "filelists") / f"{split}.txt", "--filelist_dir")
    count = make_corpus(args.out, args.layout, args.speakers, args.clips, args.seconds, args.seed, args.filelist_dir,
                        args.overwrite, progress=True, av_offset_share=args.av_offset_share,
                        av_offset_max=args.av_offset_max, face_size=args.face_size)
    print(f"wrote {count} clips ({args.layout}) to {args.out}")
    shifted = round(args.av_offset_share * count)
    if shifted:
        print(f"the sound of {shifted} of them is moved by 1 to {args.av_offset_max} frames: "
              f"{Path(args.out) / OFFSETS_FILE} says by how much")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
