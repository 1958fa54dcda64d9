"""Export checkpoints to ONNX (dynamic batch), each checked against PyTorch before it is kept.

    python export.py checkpoints/wav2lip_gan.pth face_detection/detection/sfd/s3fd.pth

Takes the generator (wav2lip.pth, wav2lip_gan.pth), S3FD (s3fd.pth), the expert SyncNet
(lipsync_expert.pth) and the LSE SyncNet (syncnet_v2.model); which one a file holds is read
from its weights. Each is written beside its checkpoint (or into --outdir) with the suffix
.onnx, for ``inference.py --backend onnxruntime``; the work is done by ``deployment.onnx_export``.
"""

import sys
from pathlib import Path

import system  # noqa: F401 - first of all: Ctrl-C while the rest imports ends in one line (system/startup.py)
from system.atomic_write import check_output
from system.cli import run
from system.flags import argument_parser
from system.errors import check_number

OPSETS = (9, 20)  # the opsets written and checked for these networks (PyTorch's TorchScript exporter stops at 20)


def build_parser():
    p = argument_parser(__doc__)
    p.add_argument("checkpoints", nargs="+", help="checkpoint files to export")
    p.add_argument("--outdir", help="write the .onnx files here (default: beside each checkpoint)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset version to write")
    p.add_argument("--verbose", action="store_true", help="show tracebacks")
    return p


def main(argv):
    args = build_parser().parse_args(argv)
    check_number("--opset", args.opset, *OPSETS, whole=True)
    from deployment.onnx_export import export_network

    targets = {checkpoint: (Path(args.outdir) if args.outdir else checkpoint.parent) / (checkpoint.stem + ".onnx")
               for checkpoint in map(Path, args.checkpoints)}
    given = {f"checkpoint{f' {number}' * (len(targets) > 1)}": path for number, path in enumerate(targets, 1)}
    for target in targets.values():  # before any export: none may replace a checkpoint given (or a folder, ...)
        check_output(target, "--outdir" if args.outdir else None, given)
    for checkpoint, target in targets.items():
        network, difference = export_network(checkpoint, target, opset=args.opset)
        print(f"Wrote {target}: {network}, largest difference from PyTorch {difference:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
