"""What the networks take, defined once for inference, training and the sync scores.

Both networks see square BGR faces (FACE_SIZE = 96 pixels a side, or a larger size of
FACE_SIZES the networks were built for and their checkpoints record) scaled to [0, 1] and mel chunks
of MEL_STEP frames (0.2 s at audio.mel_fps(), 80 mel frames a second) of MEL_BINS
bins. The generator sees each face with its lower half zeroed, stacked on channels with a
reference face; the expert sees the lower halves of WINDOW consecutive faces stacked on
channels. Faces here are laid out (..., channels, [time,] rows, columns).

Nothing here imports torch at load time: the onnxruntime backend runs without it.
"""

FACE_SIZE = 96  # pixels on each side of a face crop: the released networks' size, the default
# The sizes the networks are built for: 96 and its doublings. Each doubling adds one stride-2
# level to the face encoders (and one upsampling level with its skip to the generator's
# decoder), so everything from 96 pixels down is the released network's. 288 would need a
# stride-3 level that no released layer has: not offered.
FACE_SIZES = (96, 192, 384)
MEL_BINS = 80  # rows of a mel chunk (the audio front end's num_mels)
MEL_STEP = 16  # mel frames per chunk: 0.2 s
WINDOW = 5  # consecutive frames the expert judges at once (T)


def extra_levels(face_size):
    """How many stride-2 levels a network of ``face_size`` pixels has above the released 96."""
    if face_size not in FACE_SIZES:
        raise ValueError(f"face_size must be one of {', '.join(map(str, FACE_SIZES))}, not {face_size}")
    return FACE_SIZES.index(face_size)


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
