"""Train the Wav2Lip generator against a trained, frozen expert lip-sync discriminator.

    python wav2lip_train.py --data_root lrs2_preprocessed/ --checkpoint_dir checkpoints/wav2lip/ \
        --syncnet_checkpoint_path checkpoints/lipsync_expert.pth
    torchrun --nproc_per_node 4 wav2lip_train.py ...

Its loss is ``generator_loss`` in training/losses.py (L1, plus the expert's sync loss once
weighted in); the ``syncnet_wt`` switch is ``GeneratorObjective.after_evaluation`` in
training/objectives.py, run by training/loop.py.
"""

import sys

import system  # noqa: F401 - first of all: Ctrl-C while the rest imports ends in one line (system/startup.py)
from system import cli
from training.command_line import main_for, trainer_parser
from training.objectives import GeneratorObjective


def build_parser():
    return trainer_parser(__doc__, syncnet=True)


main = main_for(GeneratorObjective, build_parser)

if __name__ == "__main__":
    sys.exit(cli.run(main))
