"""Train the expert lip-sync discriminator (SyncNet_color) on preprocessed LRS2-style data.

    python color_syncnet_train.py --data_root lrs2_preprocessed/ --checkpoint_dir checkpoints/expert/
    torchrun --nproc_per_node 4 color_syncnet_train.py --data_root ... --checkpoint_dir ...

Its loss is ``cosine_loss`` in training/losses.py; the objective (networks, step, evaluation)
is ``ExpertObjective`` in training/objectives.py, run by training/loop.py.
"""

import sys

import system  # noqa: F401 - first of all: Ctrl-C while the rest imports ends in one line (system/startup.py)
from system import cli
from training.command_line import main_for, trainer_parser
from training.objectives import ExpertObjective


def build_parser():
    return trainer_parser(__doc__)


main = main_for(ExpertObjective, build_parser)

if __name__ == "__main__":
    sys.exit(cli.run(main))
