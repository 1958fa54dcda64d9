"""Measure how far each preprocessed clip's audio is out of sync with its lips, as LSE measures a video.

    python sync_audit.py --data_root lrs2_preprocessed --syncnet_checkpoint_path checkpoints/lipsync_expert.pth
    python sync_audit.py --data_root lrs2_preprocessed --syncnet_checkpoint_path checkpoints/lipsync_expert.pth \\
        --correct --min_confidence 0.2

For each clip (<video>/<clip>/ face crops and audio.wav) and each audio offset of
-max_offset..+max_offset frames, the lip and audio features of its 5-frame windows are compared;
the report (--report, CSV or JSON) gives the clip's offset at the smallest mean distance (LSE's
sign: audio that comes d frames late gives -d) and its confidence (median minus minimum). The
summary counts the clips in sync and shifted by each offset, and a histogram is drawn beside the
report. The SyncNet is the training expert (lipsync_expert.pth, or a checkpoint of
color_syncnet_train.py) or LSE's syncnet_v2.model, told apart by the file. A killed run resumes
where it stopped; a clip that cannot be scored is a row with its error, and the exit status is
then 1. --correct writes <data_root>/sync_corrections.csv, which the training data reads to shift
each clip's audio back into sync; the preprocessed files are never rewritten (delete the file to
undo). See docs/sync-audit.md.
"""

import sys
from pathlib import Path

import system  # noqa: F401 - first of all: Ctrl-C while the rest imports ends in one line (system/startup.py)
from evaluation.scores_LSE.command_line import MAX_VSHIFT
from evaluation.sync_audit import (
    MAX_OFFSET,
    SyncAudit,
    correct,
    draw_histogram,
    list_clips,
    load_auditor,
    network_kind,
    scored,
    summary,
)
from system.atomic_write import check_output, check_writable
from system.cli import existing_folder, run
from system.devices import pick_device
from system.errors import UserError, check_number
from system.flags import add_run_flags, add_syncnet_flag, argument_parser
from system.progress import loading
from system.sharding import Shard, add_shard_flag, shard_files
from training.sync_corrections import corrections_path

REPORT_NAME = "sync_audit.csv"


def build_parser():
    p = argument_parser(__doc__)
    p.add_argument("--data_root", required=True, help="the preprocessed folder (<video>/<clip>/ face crops and audio.wav)")
    add_syncnet_flag(p, "the expert (lipsync_expert.pth, or a checkpoint of color_syncnet_train.py) or LSE's "
                        "syncnet_v2.model", required=True)
    p.add_argument("--filelist", help="audit only the <video>/<clip> folders this .txt filelist names (default: every clip)")
    p.add_argument("--max_offset", type=int, default=MAX_OFFSET, help="audio offsets -max_offset..+max_offset frames are tried")
    p.add_argument("--report", help=f"per-clip results, .csv or .json (default: <data_root>/{REPORT_NAME}); "
                                    "the histogram is written beside it (.png)")
    p.add_argument("--batch_size", type=int, default=32, help="5-frame windows per SyncNet batch")
    p.add_argument("--min_confidence", type=float, metavar="C",
                   help="count the clips whose confidence is below C in the summary and mark C on the histogram")
    p.add_argument("--correct", action="store_true",
                   help="write <data_root>/sync_corrections.csv from the whole report: training shifts each clip's "
                        "audio by its offset (delete the file to undo)")
    add_shard_flag(p)
    add_run_flags(p)
    return p


def check_flags(args):
    """Refuse bad values in one line each, before anything is read."""
    check_number("--max_offset", args.max_offset, 0, MAX_VSHIFT, whole=True)
    check_number("--batch_size", args.batch_size, 1, whole=True)
    if args.min_confidence is not None:
        check_number("--min_confidence", args.min_confidence, 0)
    shard = Shard.parse(args.shard)
    if args.correct and not shard.whole:
        raise UserError("--correct needs the whole run's report: run the shards without it, join their reports "
                        "with merge_shards.py, then run again with --correct and without --shard")
    return shard


def refuse_unjoined_shards(report):
    """A whole run whose report is still in shard files would score everything again: one line."""
    if not report.exists() and any(report.parent.glob(f"{report.stem}.shard-*-of-*{report.suffix}")):
        shard_files(report)  # names the missing shards, if any
        raise UserError(f"{report} is still in shard files: join them first with python merge_shards.py {report}")


def main(argv):
    args = build_parser().parse_args(argv)
    shard = check_flags(args)
    root = existing_folder(args.data_root, "--data_root")
    report = Path(args.report) if args.report else root / REPORT_NAME
    check_writable(report.parent)
    if shard.whole:
        refuse_unjoined_shards(report)
    checkpoint = args.syncnet_checkpoint_path
    histogram = report.with_suffix(".png")
    outputs = [(shard.path(report), "--report"), (histogram, "the histogram"),
               *[(corrections_path(root), "the corrections file")] * args.correct]
    if report.suffix.lower() not in (".csv", ".json") or report.name == corrections_path(root).name:
        raise UserError(f"--report {report}: name a .csv or .json file other than {corrections_path(root).name}")
    for path, flag in outputs:  # before anything is read
        check_output(path, flag, {"--syncnet_checkpoint_path": checkpoint})
    clips = list_clips(root, args.filelist)
    if not clips:
        raise UserError(f"no clip folders in {root} (<video>/<clip>/ with face crops or audio.wav)")
    kind = network_kind(checkpoint)
    audit = SyncAudit.plan(root, shard.select(clips), shard.path(report), checkpoint, args.max_offset)
    device = pick_device(args.device)
    loading(kind, checkpoint, not args.quiet, device)
    rows = audit.run(load_auditor(checkpoint, kind, device, args.batch_size, args.max_offset), progress=not args.quiet)
    failed = len(rows) - len(scored(rows))
    if not shard.whole:
        print(f"{shard.describe()}: {len(scored(rows))} of {len(rows)} clips audited into {audit.report}; when every "
              f"shard is done: python merge_shards.py {report}, then this command without --shard for the summary "
              "and the histogram (it scores nothing again)")
        return 1 if failed else 0
    heading = f"Sync audit of {root}: {kind} ({Path(checkpoint).name}), offsets -{args.max_offset}..+{args.max_offset}"
    print(heading)
    print("\n".join(f"  {line}" for line in summary(rows, args.min_confidence)))
    if scored(rows):
        draw_histogram(rows, histogram, heading, args.min_confidence)
    print(f"Report: {report}" + (f"; histogram: {histogram}" if scored(rows) else ""))
    if args.correct:
        print(f"Wrote the offsets of {len(scored(rows))} clips to {correct(root, rows)}: training shifts their audio "
              "back into sync (delete the file to undo)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(run(main))
