"""One run's work split across processes and machines: ``--shard K/N``, or torchrun's RANK
and WORLD_SIZE.

Item i of a run's sorted work list belongs to shard i mod N (K counts from 0, as RANK does),
so every item has exactly one shard, decided by the list alone. What a run writes per item
(face crops, generated videos) is the same whichever shard writes it. A file a whole run
writes once (a table of scores, a list of failures, FID statistics) is written by each shard
beside it as ``<name>.shard-K-of-N<suffix>``; ``merge_shards.py`` joins them into the file
one run writes.
"""

import dataclasses
import os
import re
from pathlib import Path

from system.errors import UserError
from system.reports import read_rows, write_or_remove, write_rows

_SHARD_NAME = re.compile(r"^(?P<stem>.+)\.shard-(?P<index>\d+)-of-(?P<count>\d+)(?P<suffix>\.[^.]+)$")


@dataclasses.dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, flag=None, environ=os.environ):
        """``--shard K/N``; without it, RANK/WORLD_SIZE when torchrun set them; else the whole run."""
        if flag is None and "WORLD_SIZE" in environ:
            flag = f"{environ.get('RANK', '0')}/{environ['WORLD_SIZE']}"
        if flag is None:
            return cls()
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(flag))
        if not match or not int(match[1]) < int(match[2]):
            raise UserError(f"--shard {flag!r}: expected K/N with 0 <= K < N (K counts from 0, as torchrun's RANK)")
        return cls(int(match[1]), int(match[2]))

    @property
    def whole(self):
        return self.count == 1

    def select(self, items):
        """This shard's items: every N-th, starting at the K-th."""
        return [item for position, item in enumerate(items) if position % self.count == self.index]

    def path(self, path):
        """Where this shard writes a file that the whole run writes once."""
        path = Path(path)
        if self.whole:
            return path
        return path.with_name(f"{path.stem}.shard-{self.index}-of-{self.count}{path.suffix}")

    def describe(self):
        return "" if self.whole else f"shard {self.index} of {self.count} (0-based)"


def add_shard_flag(parser):
    parser.add_argument("--shard", metavar="K/N",
                        help="do the K-th of N equal shares of the work (K from 0); under torchrun, RANK/WORLD_SIZE "
                             "say it. Shared result files get a .shard-K-of-N suffix: join them with merge_shards.py")


def shard_files(path):
    """The shard files of the whole-run file ``path``, in shard order; one line when any is missing."""
    path = Path(path)
    found = {}
    for candidate in path.parent.glob(f"{path.stem}.shard-*-of-*{path.suffix}"):
        match = _SHARD_NAME.match(candidate.name)
        if match and match["stem"] == path.stem:
            found.setdefault(int(match["count"]), {})[int(match["index"])] = candidate
    if not found:
        raise UserError(f"no shard files of {path} (named {path.stem}.shard-K-of-N{path.suffix})")
    if len(found) > 1:
        raise UserError(f"shard files of {path} from runs of different sizes: N = {', '.join(map(str, sorted(found)))}")
    count, files = next(iter(found.items()))
    missing = sorted(set(range(count)) - set(files))
    if missing:
        raise UserError(f"{path}: shard(s) {', '.join(map(str, missing))} of {count} missing: "
                        "run them (or wait for them) first")
    return [files[index] for index in range(count)]


def write_table(shard, path, rows):
    """A table the whole run writes once (scores, failures; a run without rows leaves none).
    A shard always writes its part, empty or not, so that a merge can tell it was run."""
    if shard.whole:
        write_or_remove(path, rows)
    else:
        write_rows(shard.path(path), rows)


def merge_table(path):
    """Join the shard files of the table ``path`` into it, rows in the order one run writes
    them (by their first column: the video, or the pair's index); returns the rows."""
    rows = [row for part in shard_files(path) for row in read_rows(part)]
    if rows:
        first = next(iter(rows[0]))
        rows.sort(key=lambda row: int(row[first]) if str(row[first]).isdigit() else str(row[first]))
    write_or_remove(path, rows)
    return rows
