"""The run both LSE scripts make around their scoring: this shard's videos and scores file
checked before anything is read, each video scored in turn (one that cannot be is a row with
its error, said on stderr in one line, and the others go on), the rows written whole, and the
last lines: how many videos failed, the notes once each, the averages. What a video's rows
hold is each script's own."""

import collections
import dataclasses
import sys
from pathlib import Path

from tqdm import tqdm

from system.atomic_write import check_output, check_writable
from system.errors import UserError
from system.reports import lse_averages, write_rows
from system.sharding import Shard


@dataclasses.dataclass
class ScoringRun:
    """One run of an LSE script: ``plan`` it, ``score`` its videos, ``finish`` it."""

    videos: list  # this shard's
    scores: Path  # this shard's scores file
    merged: str  # the whole run's scores file (--scores), that merge_shards.py writes
    shard: Shard
    columns: tuple  # of a row
    verbose: bool = False  # each video's notes as it is scored, not only their count at the end
    noted: collections.Counter = dataclasses.field(default_factory=collections.Counter)  # videos per kind of note
    failed: list = dataclasses.field(default_factory=list)  # the names of the videos without scores

    @classmethod
    def plan(cls, videos, scores, shard, syncnet_checkpoint_path, columns, verbose=False):
        """The run of shard ``shard`` (--shard's text) over ``videos`` into ``scores``: a scores
        file that cannot be written, or would replace the weights or a video, is one line here."""
        check_writable(Path(scores).parent)
        shard = Shard.parse(shard)
        videos, path = shard.select(videos), shard.path(scores)
        check_output(path, "--scores", {"--syncnet_checkpoint_path": syncnet_checkpoint_path,
                                        **{f"video {video.name}": video for video in videos}})
        return cls(videos, path, scores, shard, columns, verbose)

    def score(self, score_video, progress=True):
        """The rows of every video, ``score_video(video)``'s or, when it raises a UserError, a
        row with the error; written to the scores file."""
        rows = []
        for video in tqdm(self.videos, desc="LSE", unit="video", disable=not progress):
            try:
                rows += score_video(video)
            except UserError as error:
                rows.append(self.failure(video, f"skipped: {error}", str(error)))
        write_rows(self.scores, rows)
        return rows

    def failure(self, video, said, error):
        """The row of a video that has no scores (``said`` on stderr): its name and ``error``."""
        tqdm.write(f"{video.name}: {said}", file=sys.stderr)
        self.failed.append(video.name)
        return {**dict.fromkeys(self.columns, ""), "video": video.name, "error": error}

    def say(self, line):
        """A line of the run's output, printed above the progress bar."""
        tqdm.write(line)

    def note(self, video, notes):
        """What scoring ``video`` had to do to it (``{kind: this video's words}``): said for
        each video with --verbose, else counted by kind and said once at the end. Returns the
        text of the scores' notes column."""
        self.noted.update(notes.keys())
        if notes and self.verbose:
            tqdm.write(f"{video.name}: " + "; ".join(notes.values()), file=sys.stderr)
        return "; ".join(notes.values())

    def finish(self, rows, done, nothing_scored, per="per-video"):
        """Print how the run ended: the notes, once each; ``done`` (what was scored) and how
        many videos failed; for one shard, how to merge the shards, else the averages (or
        raise ``nothing_scored`` when no row scored). The exit status: 1 when any video failed."""
        for kind, count in sorted(self.noted.items()):
            how = "" if self.verbose else "; --verbose names them as they are scored"
            print(f"note: {kind}: {count} of {len(self.videos)} videos (notes column of {self.scores}{how})",
                  file=sys.stderr)
        failed = f"; {len(self.failed)} failed (named above)" if self.failed else ""
        if not self.shard.whole:
            print(f"{self.shard.describe()}: {done}{failed} into {self.scores}; "
                  f"when every shard is done: python merge_shards.py {self.merged}")
        elif not scored(rows):
            raise UserError(f"{nothing_scored} (see {self.scores})")
        else:
            print(f"{done[0].upper()}{done[1:]}{failed}; {per} scores in {self.scores}")
            print("\n".join(lse_averages(rows)))
        return 1 if self.failed else 0


def scored(rows):
    """The rows with scores."""
    return [row for row in rows if not row["error"]]
