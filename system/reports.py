"""Per-video results of the evaluation scripts, as CSV or JSON (chosen by the file's suffix)."""

import csv
import json
import statistics
from pathlib import Path

from system.atomic_write import atomic_output


def write_rows(path, rows):
    """Write a list of flat dicts atomically: JSON (a list) for ``.json``, else CSV with a header."""
    path = Path(path)
    with atomic_output(path) as temporary, open(temporary, "w", newline="") as handle:
        if path.suffix.lower() == ".json":
            json.dump(rows, handle, indent=1)
            return
        columns = list(dict.fromkeys(key for row in rows for key in row))
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)


def write_or_remove(path, rows):
    """``write_rows`` when there are rows; with none, remove the file an earlier run left
    (a list of failures that a resumed run dealt with must not stay behind)."""
    if rows:
        write_rows(path, rows)
    else:
        Path(path).unlink(missing_ok=True)


def default_scores_path(data_root, kind):
    """Where a scoring script writes when --scores is not given: ``results/<folder>_<kind>.csv``,
    named after the folder scored, so that scoring two folders keeps both."""
    return Path("results") / f"{Path(data_root).resolve().name}_{kind}.csv"


def read_rows(path):
    """What ``write_rows`` wrote (CSV values come back as strings)."""
    path = Path(path)
    with open(path, newline="") as handle:
        return json.load(handle) if path.suffix.lower() == ".json" else list(csv.DictReader(handle))


def lse_averages(rows):
    """The reference's closing lines over the rows scored (floats, or a CSV's strings)."""
    scored = [row for row in rows if not row["error"]]
    return ["Average Confidence: {}".format(statistics.mean(float(row["lse_c"]) for row in scored)),
            "Average Minimum Distance: {}".format(statistics.mean(float(row["lse_d"]) for row in scored))]
