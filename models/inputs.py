"""What the networks take, defined once for inference, training and the sync scores.

Both networks see BGR faces of FACE_SIZE x FACE_SIZE pixels scaled to [0, 1] and mel chunks
of MEL_STEP frames (0.2 s at audio.mel_fps(), 80 mel frames a second) of MEL_BINS
bins. The generator sees each face with its lower half zeroed, stacked on channels with a
reference face; the expert sees the lower halves of WINDOW consecutive faces stacked on
channels. Faces here are laid out (..., channels, [time,] rows, columns).

Nothing here imports torch at load time: the onnxruntime backend runs without it.
"""

FACE_SIZE = 96  # pixels on each side of a face crop
MEL_BINS = 80  # rows of a mel chunk (the audio front end's num_mels)
MEL_STEP = 16  # mel frames per chunk: 0.2 s
WINDOW = 5  # consecutive frames the expert judges at once (T)


def lower_half(faces):
    """The rows from the middle down (rows 48..95 of a 96-pixel face): the mouth and jaw."""
    return faces[..., faces.shape[-2] // 2:, :]


def mask_lower_half(faces):
    """A copy of ``faces`` (a tensor or an array) with the lower half zeroed: what the generator
    is asked to fill in."""
    masked = faces.clone() if hasattr(faces, "clone") else faces.copy()  # a tensor, or an array
    masked[..., faces.shape[-2] // 2:, :] = 0
    return masked


def stack_lower_halves(window):
    """(..., 3, T, H, W) -> (..., 3T, H/2, W): the lower halves of the T frames stacked on
    channels, frame by frame (BGR of frame 0, BGR of frame 1, ...), as the expert sees them."""
    import torch

    window = lower_half(window)
    return torch.cat([window[..., t, :, :] for t in range(window.shape[-3])], dim=-3)
