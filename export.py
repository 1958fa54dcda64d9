"""Export checkpoints to ONNX (dynamic batch), each checked against PyTorch before it is kept.

    python export.py checkpoints/wav2lip_gan.pth face_detection/detection/sfd/s3fd.pth

Takes the generator (wav2lip.pth, wav2lip_gan.pth), S3FD (s3fd.pth), the expert SyncNet
(lipsync_expert.pth) and the LSE SyncNet (syncnet_v2.model); which one a file holds is read
from its weights. Each is written beside its checkpoint (or into --outdir) with the suffix
.onnx, for ``inference.py --backend onnxruntime``; the work is done by ``deployment.onnx_export``.
"""

import sys
import traceback
from pathlib import Path

import system  # noqa: F401 - first of all: Ctrl-C while the rest imports ends in one line (system/startup.py)
from deployment.onnx_export import EXPORT_TOLERANCE, export_network
from system.atomic_write import check_output
from system.cli import run
from system.errors import UserError, check_number, describe_os_error
from system.flags import add_verbose_flag, argument_parser
from system.progress import say

OPSETS = (9, 20)  # the opsets written and checked for these networks (PyTorch's TorchScript exporter stops at 20)


def build_parser():
    p = argument_parser(__doc__)
    p.add_argument("checkpoints", nargs="+", help="checkpoint files to export")
    p.add_argument("--outdir", help="write the .onnx files here (default: beside each checkpoint)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset version to write")
    p.add_argument("--tolerance", type=float, default=EXPORT_TOLERANCE,
                   help="the largest difference allowed between ONNX Runtime's and PyTorch's outputs on the check's "
                        "inputs (relative to the output's largest value where that is above 1); an export that "
                        "differs more is not written")
    p.add_argument("--quiet", action="store_true", help="no line as each network is exported")
    add_verbose_flag(p)
    return p


def main(argv):
    args = build_parser().parse_args(argv)
    check_number("--opset", args.opset, *OPSETS, whole=True)
    check_number("--tolerance", args.tolerance, 0)

    targets = {checkpoint: (Path(args.outdir) if args.outdir else checkpoint.parent) / (checkpoint.stem + ".onnx")
               for checkpoint in map(Path, args.checkpoints)}
    given = {f"checkpoint{f' {number}' * (len(targets) > 1)}": path for number, path in enumerate(targets, 1)}
    for target in targets.values():  # before any export: none may replace a checkpoint given (or a folder, ...)
        check_output(target, "--outdir" if args.outdir else None, given)
    refused = []
    for checkpoint, target in targets.items():
        def starting(network, checkpoint=checkpoint):  # ~10 s a network: said once the file is known good
            say(f"exporting {checkpoint}, {network}, and checking it against PyTorch ...", not args.quiet)

        try:
            network, difference = export_network(checkpoint, target, opset=args.opset, tolerance=args.tolerance,
                                                 on_start=starting)
        except (UserError, OSError) as error:
            if len(targets) == 1:
                raise
            # One refused file (not exported, unreadable, not a known network) leaves the others to export.
            if args.verbose:
                traceback.print_exc()
            print(f"error: {describe_os_error(error) if isinstance(error, OSError) else error}", file=sys.stderr)
            refused.append(str(checkpoint))
            continue
        print(f"Wrote {target}: {network}, largest difference from PyTorch {difference:.1e}")
    if refused:
        raise UserError(f"{len(refused)} of {len(targets)} checkpoints not exported (see above): {', '.join(refused)}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
