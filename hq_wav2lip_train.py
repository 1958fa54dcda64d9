"""Train the Wav2Lip generator with the frozen expert and the visual-quality discriminator (GAN).

    python hq_wav2lip_train.py --data_root lrs2_preprocessed/ --checkpoint_dir checkpoints/wav2lip_gan/ \
        --syncnet_checkpoint_path checkpoints/lipsync_expert.pth
    torchrun --nproc_per_node 4 hq_wav2lip_train.py ...
"""

import sys

import cli
import training
from objectives import GANGeneratorObjective

main = training.main_for(GANGeneratorObjective, __doc__.split("\n\n")[0], syncnet=True, disc=True)

if __name__ == "__main__":
    sys.exit(cli.run(main))
