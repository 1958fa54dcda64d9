"""The released networks as ONNX (run by ``system.onnx_runtime.inference_session``).

    export_network(checkpoint, onnx_path)   the network a checkpoint holds, written as ONNX with a
                                            dynamic batch, checked against PyTorch -> max difference

Which network a checkpoint holds is read from its keys (checkpoint.identify_network). The
generator is exported with its BatchNorm folded, as inference runs it.
"""

import contextlib
import dataclasses
import io
import logging
import warnings
from pathlib import Path

import numpy as np

from system.atomic_write import atomic_output
from system.digests import file_digest
from system.errors import UserError
from system.onnx_runtime import inference_session

# The largest difference from PyTorch an export may show, in units of the output's largest
# magnitude where that is above 1 (S3FD's logits and offsets; the generator's are in [0, 1]).
EXPORT_TOLERANCE = 1e-4


@dataclasses.dataclass(frozen=True)
class OnnxSpec:
    """How one network is exported: names, example input shapes (batch first), dynamic axes."""

    inputs: tuple  # (name, shape) per input
    outputs: tuple  # output names
    dynamic: tuple  # per input: {axis: name} of the dimensions that vary


def generator_spec(face_size):
    return OnnxSpec((("mel", (2, 1, 80, 16)), ("face", (2, 6, face_size, face_size))), ("generated",),
                    ({0: "batch"}, {0: "batch"}))


def expert_spec(face_size):
    return OnnxSpec((("mel", (2, 1, 80, 16)), ("faces", (2, 15, face_size // 2, face_size))),
                    ("audio_embedding", "face_embedding"), ({0: "batch"}, {0: "batch"}))


S3FD_SPEC = OnnxSpec((("frames", (1, 3, 160, 224)),),
                     tuple(f"{kind}{level}" for level in range(1, 7) for kind in ("cls", "loc")),
                     ({0: "batch", 2: "height", 3: "width"},))
LSE_SYNCNET = OnnxSpec((("mfcc", (2, 1, 13, 20)), ("frames", (2, 3, 5, 224, 224))), ("audio_embedding", "lip_embedding"),
                       ({0: "audio_batch"}, {0: "video_batch"}))


def _networks():
    """identify_network's names -> (spec of a face size, loader of a checkpoint, preparation); imported here,
    as torch is needed only to export. The generator and the expert are built at the face size
    their checkpoint records, and exported at it."""
    import torch

    from evaluation.metrics.syncnet import S
    from face_detection import S3FD
    from models import SyncNet_color, Wav2Lip
    from models.checkpoint import load_network, load_weights
    from models.fusion import fuse_for_inference

    def loaded(network_class, path):
        net = network_class()
        load_weights(net, path)
        return net

    class BothEmbeddings(torch.nn.Module):
        """The LSE SyncNet's two towers as one graph: (mfcc, frames) -> (audio, lip) embeddings."""

        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, mfcc, frames):
            return self.net.forward_aud(mfcc), self.net.forward_lip(frames)

    return {
        "the Wav2Lip generator": (generator_spec, lambda path: load_network(Wav2Lip, path)[0],
                                  lambda net: fuse_for_inference(net, in_place=True)),
        "the expert lip-sync SyncNet": (expert_spec, lambda path: load_network(SyncNet_color, path)[0], lambda net: net),
        "the S3FD face detector": (lambda _: S3FD_SPEC, lambda path: loaded(S3FD, path), lambda net: net),
        "the LSE SyncNet": (lambda _: LSE_SYNCNET, lambda path: loaded(S, path), BothEmbeddings),
    }


def export_network(checkpoint_path, onnx_path, seed=0, opset=17, tolerance=EXPORT_TOLERANCE, on_start=None):
    """Write the network of ``checkpoint_path`` to ``onnx_path`` (atomically); returns (what it
    is, the largest difference between onnxruntime's and PyTorch's outputs on seeded inputs).
    An export that differs by more than ``tolerance`` is not written. ``on_start(what it is)``
    is called once the file is known to hold a network it exports, before the slow part."""
    import torch

    from models.checkpoint import identify_network, read_checkpoint

    try:
        import onnx  # noqa: F401 - the exporter writes through it
    except ImportError:
        raise UserError("export.py needs the onnx package: pip install onnx onnxruntime") from None
    found = identify_network(read_checkpoint(checkpoint_path)["state_dict"])
    known = _networks()
    name = next((key for key in known if found and found.startswith(key)), None)
    if name is None:
        raise UserError(f"{checkpoint_path} holds {found or 'an unknown network'}: ONNX export knows "
                        + ", ".join(known))
    spec_of, load, prepare = known[name]
    if on_start is not None:
        on_start(found)
    net = load(checkpoint_path)
    spec = spec_of(getattr(net, "face_size", None))
    net = prepare(net.eval()).eval()
    generator = torch.Generator().manual_seed(seed)
    examples = tuple(torch.rand(shape, generator=generator) for _, shape in spec.inputs)
    with atomic_output(onnx_path) as temporary:
        _quiet_export(net, examples, temporary, spec, opset)
        _record_source(temporary, checkpoint_path, getattr(net, "face_size", None))
        difference = _largest_difference(net, temporary, spec, generator)
        if difference > tolerance:
            raise UserError(f"the ONNX export of {checkpoint_path} differs from PyTorch by {difference:.2e} "
                            f"(more than --tolerance {tolerance:g}): not written")
    return found, difference


def _quiet_export(net, examples, path, spec, opset=17):
    import torch

    # The TorchScript-based exporter: 4 s for the four networks where torch.export's takes 35 s,
    # with the same graphs and no onnxscript to install.
    dynamic = {name: axes for (name, _), axes in zip(spec.inputs, spec.dynamic)}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _quiet_loggers("torch"):
        warnings.simplefilter("ignore")
        torch.onnx.export(net, examples, path, input_names=[name for name, _ in spec.inputs],
                          output_names=list(spec.outputs), dynamic_axes=dynamic, dynamo=False, opset_version=opset)


def _record_source(onnx_path, checkpoint_path, face_size):
    """The checkpoint the export was made from (its bytes, modification time and SHA-256) and
    the face size, in the model's metadata: lipsync.onnx_generator.source_checkpoint_error finds
    an .onnx left from another checkpoint."""
    import onnx

    model = onnx.load(onnx_path)
    stat = Path(checkpoint_path).stat()
    source = {"checkpoint_bytes": stat.st_size, "checkpoint_mtime_ns": stat.st_mtime_ns,
              "checkpoint_sha256": file_digest(checkpoint_path)}
    if face_size is not None:
        source["face_size"] = face_size
    for key, value in source.items():
        model.metadata_props.add(key=key, value=str(value))
    onnx.save(model, onnx_path)


@contextlib.contextmanager
def _quiet_loggers(name):
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _largest_difference(net, path, spec, generator):
    """onnxruntime against PyTorch on a batch (and frame size) other than the example's."""
    import torch

    shapes = []
    for (_, shape), axes in zip(spec.inputs, spec.dynamic):
        shapes.append(tuple(size + 3 * (axis == 0) + 32 * (axis > 0) if axis in axes else size
                            for axis, size in enumerate(shape)))
    inputs = [torch.rand(shape, generator=generator) for shape in shapes]
    with torch.no_grad():
        expected = net(*inputs)
    expected = [expected] if isinstance(expected, torch.Tensor) else list(expected)
    got = inference_session(path, "cpu").run(None, {name: x.numpy() for (name, _), x in zip(spec.inputs, inputs)})
    return max(float(np.abs(g - e.numpy()).max() / max(1.0, float(e.abs().max())))
               for g, e in zip(got, expected, strict=True))
