"""A dataset whose items need a module-level lock, for the test of DataLoader workers started
while another thread of the trainer holds that lock (as PyTorch's, OpenCV's or TensorBoard's
threads hold theirs): a forked worker inherits the lock held, forever."""

import threading

import torch

LOCK = threading.Lock()


class NeedsTheLock(torch.utils.data.Dataset):
    def __init__(self, clips, seed=0, face_size=96):
        self.clips, self.seed = clips, seed

    def __len__(self):
        return len(self.clips)

    def __getitem__(self, index):
        with LOCK:
            return torch.tensor([float(index)]), torch.tensor(0)
