"""Does a 192-pixel Wav2Lip beat the 96-pixel one upscaled? Measured on held-out synthetic clips.

    python benchmarks/learning_check.py --workdir /tmp/lc192 --reduced --face_size 192   # first: the 192 runs
    python benchmarks/face_size_check.py --large /tmp/lc192 --workdir /tmp/fsc --time_ratio 1.3

``--large`` is a learning check run at --face_size 192 (or 384): its corpus (drawn for that
size), its expert and its generator, which trained for N steps. Here the same trainers train
the 96-pixel networks on the same corpus with the same hyper-parameters (the face size alone
changed): the expert until it meets the learning check's target, the generator for N steps (the
same steps) and then on to N x ``--time_ratio`` steps (the same time: the ratio of a large
generator step's time to a 96-pixel one's, from benchmarks/bench_face_sizes.py on an idle
machine, since the runs' own wall times depend on what else ran beside them).

Each generator then makes the mouths of the same --windows windows of the test clips (the same
draws at both sizes: a sample's draw depends on its seed alone). The 96-pixel faces are
upscaled to the large size as inference pastes them (cv2's bilinear). Against the truth, in the
lower half of each face (the part the generator draws): PSNR and SSIM (Gaussian 11 x 11, sigma
1.5, per channel, as Wang et al. 2004), beside the truth itself cut to 96 and upscaled (what a
perfect 96-pixel generator would give); and the sync loss of each expert (the large one on the
large faces, the 96 one on the faces cut to 96) on the generated lower halves with their audio.
Writes face_size_check.json and face_size_check.png (truth, large, 96 upscaled, for a few
windows) to --workdir.
"""

import json
import os
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import system  # noqa: E402, F401 - the project's first: Ctrl-C from here on ends in one line
from benchmarks.learning_check import EXPERT_TARGET  # noqa: E402
from benchmarks.shared import cpu_name  # noqa: E402
from benchmarks.training_runs import run_trainer  # noqa: E402
from system import cli, flags  # noqa: E402
from system.atomic_write import check_writable  # noqa: E402
from system.errors import UserError, check_number  # noqa: E402
from training.checkpoints import CHECKPOINT_NAME, checkpoints  # noqa: E402


def ssim(a, b):
    """Mean SSIM of two images (float, 0..255, H x W x C): Wang et al.'s, Gaussian window 11, sigma 1.5."""
    import cv2

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(x):
        return cv2.GaussianBlur(x, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b, cov = blur(a * a) - mu_a ** 2, blur(b * b) - mu_b ** 2, blur(a * b) - mu_a * mu_b
    return float(np.mean(((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))))


def psnr(a, b):
    return float(10 * np.log10(255.0 ** 2 / max(np.mean((a - b) ** 2), 1e-12)))


def step_of(path):
    return int(CHECKPOINT_NAME.match(Path(path).name)["step"])


def checkpoint_at(folder, step):
    found = [path for path in checkpoints(folder) if step_of(path) == step]
    if not found:
        raise UserError(f"{folder} has no checkpoint of step {step}")
    return found[0]


def generated_lower_halves(generator_path, samples, windows, size):
    """(generated lower halves upscaled to ``size``, uint8 (n, 5, size/2, size, 3)) of the first
    ``windows`` samples of ``samples`` by the generator of ``generator_path``."""
    import torch

    from models import Wav2Lip
    from models.checkpoint import load_network

    generator = load_network(Wav2Lip, generator_path)[0].eval()
    out = []
    with torch.no_grad():
        for n in range(windows):
            faces, frame_mels = samples[n][:2]
            generated = generator(frame_mels[None], faces[None])[0]  # (3, 5, s, s)
            frames = (generated.permute(1, 2, 3, 0).numpy() * 255).astype(np.uint8)  # as inference truncates
            out.append(upscaled_lower_halves(frames, size))
    return np.stack(out)


def upscaled_lower_halves(frames, size):
    """The lower halves of uint8 frames (5, s, s, 3) as inference pastes them: resized to ``size``
    by cv2's bilinear when s is smaller."""
    import cv2

    if frames.shape[1] != size:
        frames = np.stack([cv2.resize(frame, (size, size)) for frame in frames])
    return frames[:, size // 2:]


def as_uint8(target):
    """A sample's target window (3, 5, s, s), float 0..1 from uint8 pixels, as those pixels (5, s, s, 3)."""
    return (target.permute(1, 2, 3, 0).numpy() * 255).round().astype(np.uint8)


def load_expert(expert_path):
    """The expert of ``expert_path``, in train mode, as the generator's trainer uses it."""
    from models import SyncNet_color
    from models.checkpoint import load_network

    return load_network(SyncNet_color, expert_path)[0]


def sync_loss(expert, lower_halves, mels):
    """The ``expert``'s mean sync loss (BCE of the cosine against "in sync") on 5-frame lower
    halves (uint8, resized to the expert's size) with their window's mel."""
    import cv2
    import torch

    from models.inputs import stack_lower_halves
    from training.losses import cosine_loss

    size = expert.face_size
    losses = []
    with torch.no_grad():
        for start in range(0, len(lower_halves), 8):
            batch = lower_halves[start:start + 8]
            faces = np.stack([[cv2.resize(half, (size, size // 2)) for half in window] for window in batch])
            faces = torch.from_numpy(faces).float().permute(0, 4, 1, 2, 3) / 255  # (n, 3, 5, s/2, s)
            faces = torch.cat([torch.zeros_like(faces), faces], dim=3)  # whole faces (upper halves blank) as it takes them
            audio_embedding, face_embedding = expert(mels[start:start + 8], stack_lower_halves(faces))
            losses.append(cosine_loss(audio_embedding, face_embedding, torch.ones(len(batch), 1)).item() * len(batch))
    return sum(losses) / len(lower_halves)


def picture(out, truth, large, small, size, shown=4):
    """The middle frame's lower half of ``shown`` windows: truth | large | 96 upscaled, a row each."""
    import cv2

    rows = [np.hstack([truth[n, 2], large[n, 2], small[n, 2]]) for n in range(min(shown, len(truth)))]
    image = np.vstack(rows)
    for k, text in enumerate(("truth", f"{size} px", "96 px, upscaled")):
        cv2.putText(image, text, (k * size + 4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    cv2.imwrite(str(out), image)


def build_parser():
    parser = flags.argument_parser(__doc__)
    parser.add_argument("--large", required=True, help="a learning check's --workdir, run at --face_size 192 or 384")
    parser.add_argument("--workdir", required=True, help="where the 96-pixel runs and the results go; a check left "
                                                         "half-way there goes on")
    parser.add_argument("--time_ratio", type=float, required=True,
                        help="a large generator step's time over a 96-pixel one's (bench_face_sizes.py, idle machine)")
    parser.add_argument("--windows", type=int, default=96, help="test windows of 5 frames to score")
    parser.add_argument("--expert_steps", type=int, help="most steps of the 96-pixel expert (default: 4000)")
    flags.add_verbose_flag(parser)
    return parser


def main(argv):
    args = build_parser().parse_args(argv)
    check_number("--time_ratio", args.time_ratio, 0.1, 100)
    check_number("--windows", args.windows, 1, whole=True)
    large, work = Path(args.large).absolute(), Path(args.workdir).absolute()
    summary = large / "learning_check.json"
    if not summary.is_file() or not checkpoints(large / "wav2lip"):
        raise UserError(f"--large {large}: no finished learning check there (learning_check.json and wav2lip/ "
                        "checkpoints); run benchmarks/learning_check.py --face_size 192 --workdir there first")
    check_writable(work)
    run = json.loads(summary.read_text())
    size = run.get("face_size", 96)
    if size == 96:
        raise UserError(f"--large {large} is a learning check of 96-pixel networks; it needs 192 or 384")
    corpus, expert_large = large / f"corpus{size}", checkpoints(large / "expert")[-1]
    generator_large = checkpoints(large / "wav2lip")[-1]
    steps = step_of(generator_large)
    same_time = max(steps, round(steps * args.time_ratio))

    def at_96(hparams_text):  # the large run's hyper-parameters, the face size alone changed
        return re.sub(r"face_size=\d+", "face_size=96", hparams_text)

    common = ["--data_root", str(corpus), "--filelist_dir", str(corpus / "filelists"), "--device", "cpu",
              "--amp", run["amp"], "--log_interval", "25"]
    print(f"training the 96-pixel expert on {corpus}", flush=True)
    run_trainer("color_syncnet_train.py", [*common, "--keep_last", "2", "--hparams", at_96(run["expert"]["hparams"]),
                                           "--eval_batches", "25"],
                args.expert_steps or 4000, 250, "eval/loss", EXPERT_TARGET, work / "expert96", "the face-size check")
    expert_small = checkpoints(work / "expert96")[-1]
    print(f"training the 96-pixel generator to step {steps}, then {same_time}", flush=True)
    generator_args = [*common, "--keep_last", "0", "--hparams", at_96(run["generator"]["hparams"]), "--eval_batches",
                      "25", "--syncnet_checkpoint_path", str(expert_small)]
    for stage in (steps, same_time):
        run_trainer("wav2lip_train.py", generator_args, stage, 100, "eval/sync", None, work / "wav2lip96",
                    "the face-size check")

    import torch

    from training import dataset

    clips = dataset.read_filelist(corpus / "filelists", "test", corpus)
    truth_samples = dataset.GeneratorSamples(clips, "face_size_check", face_size=size)
    small_samples = dataset.GeneratorSamples(clips, "face_size_check", face_size=96)  # the same draws, cut to 96
    truth = np.stack([as_uint8(truth_samples[n][3])[:, size // 2:] for n in range(args.windows)])
    mels = torch.stack([truth_samples[n][2] for n in range(args.windows)])
    results = {"machine": f"CPU: {cpu_name()}, {os.cpu_count()} cores", "face_size": size, "steps": steps,
               "same_time_steps": same_time, "time_ratio": args.time_ratio, "windows": args.windows,
               "test_clips": len(clips), "generators": {}}
    made = {f"{size} px, step {steps}": generated_lower_halves(generator_large, truth_samples, args.windows, size)}
    # A perfect 96-pixel generator: its own target (the truth as the dataset cuts it to 96), upscaled.
    through_96 = np.stack([upscaled_lower_halves(as_uint8(small_samples[n][3]), size) for n in range(args.windows)])
    for step in (steps, same_time):
        path = checkpoint_at(work / "wav2lip96", step)
        made[f"96 px upscaled, step {step}"] = generated_lower_halves(path, small_samples, args.windows, size)
    experts = {size: load_expert(expert_large), 96: load_expert(expert_small)}  # each read once
    for name, lower in [*made.items(), ("the truth through 96 px", through_96)]:
        pairs = [(t.astype(np.float64), g.astype(np.float64)) for t, g in zip(truth.reshape(-1, *truth.shape[2:]),
                                                                              lower.reshape(-1, *lower.shape[2:]))]
        results["generators"][name] = {
            "psnr_lower_half": round(float(np.mean([psnr(t, g) for t, g in pairs])), 2),
            "ssim_lower_half": round(float(np.mean([ssim(t, g) for t, g in pairs])), 4),
            f"sync_loss_{size}_expert": round(sync_loss(experts[size], lower, mels), 4),
            "sync_loss_96_expert": round(sync_loss(experts[96], lower, mels), 4),
        }
    results["truth"] = {f"sync_loss_{size}_expert": round(sync_loss(experts[size], truth, mels), 4),
                        "sync_loss_96_expert": round(sync_loss(experts[96], truth, mels), 4)}
    work.mkdir(parents=True, exist_ok=True)
    (work / "face_size_check.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    names = list(made)
    picture(work / "face_size_check.png", truth, made[names[0]], made[names[1]], size)
    print(f"picture: {work / 'face_size_check.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
