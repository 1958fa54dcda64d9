"""Train the Wav2Lip generator with the frozen expert and the visual-quality discriminator (GAN).

    python hq_wav2lip_train.py --data_root lrs2_preprocessed/ --checkpoint_dir checkpoints/wav2lip_gan/ \
        --syncnet_checkpoint_path checkpoints/lipsync_expert.pth
    torchrun --nproc_per_node 4 hq_wav2lip_train.py ...

The generator's loss is ``generator_loss`` in training/losses.py with the adversarial term
(``disc_wt``), the discriminator's ``realness_loss`` there; the ``syncnet_wt`` switch is
``GeneratorObjective.after_evaluation`` in training/objectives.py (``GANGeneratorObjective``
raises it to 0.03), run by training/loop.py.
"""

import sys

import system  # noqa: F401 - first of all: Ctrl-C while the rest imports ends in one line (system/startup.py)
from system import cli
from training.command_line import main_for, trainer_parser
from training.objectives import GANGeneratorObjective


def build_parser():
    return trainer_parser(__doc__, syncnet=True, disc=True)


main = main_for(GANGeneratorObjective, build_parser)

if __name__ == "__main__":
    sys.exit(cli.run(main))
