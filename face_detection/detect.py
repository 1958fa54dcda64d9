"""Batch face detection with S3FD, post-processed as the reference pipeline does.

What differs from the reference is only how: candidate boxes are gathered and decoded for
the whole batch at once instead of one Python iteration per candidate, frames travel to the
GPU as uint8, and a CUDA out-of-memory error halves the batch instead of ending the run.
"""

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from models.checkpoint import load_weights
from system.errors import UserError

from .s3fd import HEAD_STRIDES, S3FD

DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "detection" / "sfd" / "s3fd.pth"
CANDIDATE_THRESHOLD = 0.05  # a position becomes a candidate box above this face probability
SCORE_THRESHOLD = 0.5  # a kept box must score above this
NMS_THRESHOLD = 0.3
VARIANCES = (0.1, 0.2)
BGR_MEAN = (104.0, 117.0, 123.0)  # subtracted after the BGR -> RGB flip, in this order, as the reference does


def prepare_frames(frames_bgr, device):
    """N x H x W x 3 BGR uint8 -> the network's N x 3 x H x W float input, built on ``device``."""
    frames = torch.from_numpy(np.ascontiguousarray(frames_bgr)).to(device, non_blocking=True)
    mean = torch.tensor(BGR_MEAN, device=frames.device).view(1, 3, 1, 1)
    return frames.flip(-1).permute(0, 3, 1, 2).float() - mean


@torch.no_grad()
def candidate_boxes(head_outputs, threshold=CANDIDATE_THRESHOLD):
    """Decode the six heads into a (N, K, 5) float32 array of [x1, y1, x2, y2, score].

    Like the reference, the K candidates are the positions where *any* image of the batch
    scores above ``threshold``, in the order (head, image, row, column), each decoded for
    every image; so NMS sees the same arrays, in the same order, as it did there.
    """
    batch = head_outputs[0].shape[0]
    scores, offsets, priors = [], [], []
    for level, stride in enumerate(HEAD_STRIDES):
        probability = F.softmax(head_outputs[2 * level].float(), dim=1)[:, 1]  # (N, H, W)
        _, rows, cols = torch.nonzero(probability > threshold, as_tuple=True)
        scores.append(probability[:, rows, cols].cpu())  # (N, k)
        offsets.append(head_outputs[2 * level + 1].float()[:, :, rows, cols].cpu())  # (N, 4, k)
        rows, cols = rows.cpu().double(), cols.cpu().double()
        size = torch.full_like(rows, 4.0 * stride)
        priors.append(torch.stack([stride / 2 + cols * stride, stride / 2 + rows * stride, size, size], 1).float())
    scores, priors = torch.cat(scores, 1), torch.cat(priors, 0)  # (N, K), (K, 4)
    loc = torch.cat(offsets, 2).transpose(1, 2)  # (N, K, 4)
    centre = priors[:, :2] + loc[..., :2] * VARIANCES[0] * priors[:, 2:]
    size = priors[:, 2:] * torch.exp(loc[..., 2:] * VARIANCES[1])
    top_left = centre - size / 2
    boxes = torch.cat([top_left, size + top_left, scores.unsqueeze(2)], dim=2)
    return boxes.numpy().reshape(batch, -1, 5)


def nms(dets, threshold=NMS_THRESHOLD):
    """Greedy non-maximum suppression; indices of the kept rows of ``dets``, best first.

    Areas and overlaps count the +1 pixel of inclusive coordinates, as the reference does.
    """
    if len(dets) == 0:
        return []
    x1, y1, x2, y2, scores = dets[:, 0], dets[:, 1], dets[:, 2], dets[:, 3], dets[:, 4]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        best, rest = order[0], order[1:]
        keep.append(best)
        w = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + 1)
        overlap = w * h / (areas[best] + areas[rest] - w * h)
        order = rest[overlap <= threshold]
    return keep


def best_box(dets):
    """The box the reference pipeline uses: the first after NMS if it scores above 0.5, else None.

    NMS always keeps the top-scoring box first, so this is that box, found without running it.
    """
    if len(dets) == 0:
        return None
    best = dets[dets[:, 4].argsort()[::-1][0]]
    return best if best[4] > SCORE_THRESHOLD else None


def kept_boxes(dets):
    """All boxes the reference's detector returns for one image: NMS at 0.3, then score > 0.5."""
    return np.array([dets[i] for i in nms(dets) if dets[i, 4] > SCORE_THRESHOLD], np.float32).reshape(-1, 5)


def weights_file(path=None):
    """The S3FD weights file a --detector_checkpoint_path flag names (None: the default place)."""
    return Path(path) if path else DEFAULT_WEIGHTS


class S3FDDetector:
    """The released S3FD weights on a device, detecting faces in batches of BGR frames."""

    def __init__(self, device="cpu", weights_path=None, batch_size=None):
        path = weights_file(weights_path)
        if not path.is_file() and path.suffix == ".onnx":
            raise UserError(f"S3FD as ONNX not found at {path} (--backend onnxruntime reads the .onnx beside the S3FD "
                            f"weights): python export.py {path.with_suffix('.pth')} writes it")
        if not path.is_file():
            raise UserError(
                f"S3FD face-detector weights not found at {path}: download s3fd.pth (face-alignment's "
                f"s3fd-619a316812.pth is the same file) and put it there"
                + ("" if weights_path else ", or pass its path with --detector_checkpoint_path")
            )
        self.device = torch.device(device)
        if path.suffix == ".onnx":
            from system.onnx_runtime import inference_session  # noqa: PLC0415

            self.net = _OnnxHeads(inference_session(path, str(device)))
            self.device = torch.device("cpu")  # the tensors around it; onnxruntime runs it where it was asked to
        else:
            self.net = S3FD()
            load_weights(self.net, path, self.device)
            self.net.eval()
        self.batch_size = batch_size
        self.on_frames_done = None  # when set, called with the number of frames each network call has done
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True

    @torch.no_grad()
    def candidates(self, frames_bgr):
        """(N, K, 5) candidate boxes of one network batch (see ``candidate_boxes``).

        On the CPU the network sees one frame at a time (a 720p frame's first layers alone take
        ~0.5 GB) and the heads are joined, so the candidates are those of the whole batch.
        """
        step = len(frames_bgr) if self.device.type == "cuda" else 1
        heads = []
        for start in range(0, len(frames_bgr), step):
            heads.append(self.net(prepare_frames(frames_bgr[start:start + step], self.device)))
            if self.on_frames_done:  # a 720p frame takes a second or more on a CPU: a bar moves per frame
                self.on_frames_done(len(heads[-1][0]))
        return candidate_boxes([torch.cat(level) for level in zip(*heads)])

    def detect(self, frames_bgr, select=best_box):
        """``select`` applied to each frame's candidates, in network batches of ``batch_size``.

        The default gives, per frame, the reference's face box [x1, y1, x2, y2, score] or None.
        """
        results, start = [], 0
        size = self.batch_size or len(frames_bgr)
        while start < len(frames_bgr):
            chunk = frames_bgr[start:start + size]
            try:
                candidates = self.candidates(chunk)
            except torch.OutOfMemoryError:
                if len(chunk) == 1:
                    raise UserError("out of GPU memory detecting faces in a single frame: pass --device cpu, "
                                    "or make the frames smaller (inference.py --resize_factor)") from None
                size = self.batch_size = max(1, len(chunk) // 2)
                torch.cuda.empty_cache()
                print(f"Out of GPU memory in face detection; batch size now {size}", file=sys.stderr)
                continue
            results.extend(select(dets) for dets in candidates)
            start += len(chunk)
        return results


class _OnnxHeads:
    """S3FD exported by export.py, called as the network is: a frames tensor in, the six heads out."""

    def __init__(self, session):
        self.session = session

    def __call__(self, frames):
        return [torch.from_numpy(head) for head in self.session.run(None, {"frames": frames.numpy()})]
