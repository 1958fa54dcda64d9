"""The reference's sample collages: generated frames beside their inputs and targets."""

import numpy as np

from media.containers import write_jpeg


def collage(inputs, generated, targets):
    """The reference's sample collage: per item and frame, [reference | masked | generated |
    target] side by side, as uint8 BGR (B, T, H, 4W, 3)."""
    def frames(tensor):
        return (tensor.detach().float().cpu().numpy().transpose(0, 2, 3, 4, 1) * 255.0).clip(0, 255).astype(np.uint8)

    x, g, gt = frames(inputs), frames(generated), frames(targets)
    return np.concatenate((x[..., 3:], x[..., :3], g, gt), axis=-2)


def write_collage(images, folder, writer=None, step=0, shown=4):
    """Each frame of ``images`` as ``<item>_<frame>.jpg`` in ``folder`` (the reference's
    samples) and the first items, frames stacked, as one TensorBoard image."""
    folder.mkdir(parents=True, exist_ok=True)
    for item, frames in enumerate(images):
        for t, image in enumerate(frames):
            write_jpeg(folder / f"{item}_{t}.jpg", image)
    if writer:
        grid = np.concatenate([np.concatenate(list(frames), axis=0) for frames in images[:shown]], axis=1)
        writer.add_image("samples", grid[..., ::-1].copy(), step, dataformats="HWC")

