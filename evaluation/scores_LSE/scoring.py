"""The run both LSE scripts make around their scoring: this shard's videos and scores file
checked before anything is read, each video scored in turn (one that cannot be is a row with
its error, said on stderr, and the others go on), the rows written whole, and the last lines.
What a video's rows hold is each script's own."""

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

    @classmethod
    def plan(cls, videos, scores, shard, initial_model, columns):
        """The run of shard ``shard`` (--shard's text) over ``videos`` into ``scores``: a scores
        file that cannot be written, or would replace the weights or a video, is one line here."""
        check_writable(Path(scores).parent)
        shard = Shard.parse(shard)
        videos, path = shard.select(videos), shard.path(scores)
        check_output(path, "--scores", {"--initial_model": initial_model,
                                        **{f"video {video.name}": video for video in videos}})
        return cls(videos, path, scores, shard, columns)

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
        return {**dict.fromkeys(self.columns, ""), "video": video.name, "error": error}

    def finish(self, rows, shard_done, whole_done, nothing_scored):
        """Print how the run ended: ``shard_done`` when it is one shard (and how to merge the
        shards), else ``whole_done`` and the averages, or raise ``nothing_scored`` when no row
        scored. The exit status: 0."""
        if not self.shard.whole:
            print(f"{self.shard.describe()}: {shard_done} into {self.scores}; "
                  f"when every shard is done: python merge_shards.py {self.merged}")
            return 0
        if not scored(rows):
            raise UserError(f"{nothing_scored} (see {self.scores})")
        print(whole_done)
        print("\n".join(lse_averages(rows)))
        return 0


def scored(rows):
    """The rows with scores."""
    return [row for row in rows if not row["error"]]
