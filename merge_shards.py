"""Join what the shards of a run wrote (--shard K/N, or torchrun) into what one run writes.

    python merge_shards.py results/generated_lse_scores.csv
    python merge_shards.py lrs2_preprocessed/preprocess_failures.csv results/failures.csv
    python merge_shards.py results/fid_stats.npz          # prints the FID

Give each file as the whole run names it: its shards ``<name>.shard-K-of-N<suffix>`` beside it
are joined (all N must be there), rows in the order one run writes them, and the shard files
are then removed. For LSE score tables the run's closing averages are printed again; for
evaluation/fid.py's statistics (.npz) the FID is printed. As one run, the exit status is 1
when a joined table records a failure (a row with an error: a video not scored, a failed pair).
"""

import sys
from pathlib import Path

import system  # noqa: F401 - first of all: Ctrl-C while the rest imports ends in one line (system/startup.py)
from system.atomic_write import check_output
from system.cli import run
from system.flags import add_verbose_flag, argument_parser
from system.reports import lse_averages
from system.sharding import merge_table, shard_files


def merge_fid(parts):
    from evaluation.metrics.fid_statistics import merged_distance  # noqa: PLC0415 - torch, only for FID

    print(f"FID: {merged_distance(parts)}")


def merge_rows(table, parts):
    """Join a table; returns how many of its rows record a failure (an error)."""
    rows = merge_table(table)
    print(f"Joined {len(parts)} shards into {table}: {len(rows)} rows" if rows else
          f"{len(parts)} shards, no rows: {table} is not written, as one run would not write it")
    if rows and {"lse_c", "lse_d", "error"} <= set(rows[0]) and any(not row["error"] for row in rows):
        print("\n".join(lse_averages(rows)))
    failed = sum(1 for row in rows if row.get("error"))
    if failed:
        print(f"{failed} failed: the error column of {table} says why", file=sys.stderr)
    return failed


def build_parser():
    p = argument_parser(__doc__)
    p.add_argument("tables", nargs="+",
                   help="the whole-run files (.csv, .json; .npz for FID) whose shard files to join")
    p.add_argument("--keep_shards", action="store_true", help="leave the shard files in place")
    add_verbose_flag(p)
    return p


def main(argv):
    args = build_parser().parse_args(argv)
    tables = {table: shard_files(table) for table in map(Path, args.tables)}
    shards = {f"shard {part.name}": part for parts in tables.values() for part in parts}
    for table in tables:  # before any merge: no table may be a shard (or a folder, a device, ...)
        check_output(table, None, shards)
    failed = 0
    for table, parts in tables.items():
        if table.suffix == ".npz":
            merge_fid(parts)
        else:
            failed += merge_rows(table, parts)
        if not args.keep_shards:
            for part in parts:
                part.unlink()
    return 1 if failed else 0  # as one run: its exit status says whether anything failed


if __name__ == "__main__":
    sys.exit(run(main))
