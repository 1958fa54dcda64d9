"""Hyper-parameters of Wav2Lip, with the released models' values.

    from hparams import hparams
    hparams.fps                      # 25
    hparams.set_hparam("batch_size", 8)
    hparams.parse("batch_size=8,num_workers=2")   # what --hparams does

The trainers (color_syncnet_train.py, wav2lip_train.py and hq_wav2lip_train.py) take
``--hparams "name=value,..."`` (``add_hparams_argument``, in training.command_line), and a
``--config`` file's "hparams" mapping (training/config_file.py), so any value can be changed
for a training run without editing this file. The other scripts
(inference.py, dub.py, preprocess.py, the evaluation scripts) use the values here as they are:
the released models were trained on them.
"""

import argparse
import contextlib
import copy
import math

from system.errors import UserError, within
from system.processes import usable_cores


class HParams:
    """A flat set of named values; reading an unknown name is an error, as is setting one."""

    def __init__(self, **values):
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "_defaults", dict(values))

    def __getattr__(self, name):
        if name.startswith("__") or name in ("_values", "_defaults"):  # copy and pickle probe for hooks before _values exists
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"no hyper-parameter named {name!r}") from None

    def __setattr__(self, name, value):
        self.set_hparam(name, value)

    def __contains__(self, name):
        return name in self._values

    def set_hparam(self, name, value):
        if name not in self._values:
            raise ValueError(f"unknown hyper-parameter {name!r} (known: {', '.join(sorted(self._values))})")
        self._values[name] = value

    def values(self):
        return dict(self._values)

    def overridden(self):
        """The names whose value is not the one this set was created with (--hparams changed them)."""
        return sorted(name for name, value in self._values.items() if value != self._defaults.get(name, value))

    def checked(self, name, value):
        """``value`` for ``name`` as a --config file gives it (JSON or YAML: already typed), if
        it is of the type of the value it replaces (a whole number where one is, true or false
        where a switch is; an int where a float is becomes a float); None is left to RULES."""
        if name not in self._values:
            raise ValueError(f"{name} is not a hyper-parameter (known: {', '.join(sorted(self._values))})")
        current = self._values[name]
        if value is None or current is None:
            return value
        if isinstance(current, float) and isinstance(value, str):  # YAML reads 1e-4 (no point) as text
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(current, bool):
            right, wanted = isinstance(value, bool), "true or false"
        elif isinstance(current, (int, float)):
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            right, wanted = (number and isinstance(value, int), "a whole number") if isinstance(current, int) \
                else (number, "a number")
            value = type(current)(value) if right else value
        else:
            right, wanted = True, ""
        if not right:
            raise ValueError(f"{name} must be {wanted}, not {value!r}")
        return value

    def summary(self):
        """One line: every value, those that differ from hparams.py's marked with "*"."""
        changed = set(self.overridden())
        return "hyper-parameters (* set by --hparams or --config): " + ", ".join(
            f"{name}={value!r}{'*' if name in changed else ''}" for name, value in sorted(self._values.items()))

    def parse(self, overrides):
        """Apply "name=value,name=value" overrides; each value takes the type of the current one."""
        for item in filter(None, (part.strip() for part in (overrides or "").split(","))):
            name, sep, text = item.partition("=")
            name = name.strip()
            if not sep:
                raise ValueError(f"hyper-parameter override {item!r} is not of the form name=value")
            if name not in self._values:
                raise ValueError(f"unknown hyper-parameter {name!r} in --hparams (known: {', '.join(sorted(self._values))})")
            self._values[name] = _convert(name, text.strip(), self._values[name])
        return self

    def __str__(self):
        width = max(map(len, self._values))
        return "Hyperparameters:\n" + "\n".join(f"  {name:<{width}} {value!r}" for name, value in sorted(self._values.items()))


def _convert(name, text, current):
    """Parse ``text`` as the type of the value it replaces."""
    if text.lower() == "none":
        return None
    if isinstance(current, bool):
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise ValueError(f"hyper-parameter {name} wants true or false, not {text!r}")
    if isinstance(current, (int, float)):
        try:
            return type(current)(text)
        except ValueError:
            raise ValueError(f"hyper-parameter {name} wants a {type(current).__name__}, not {text!r}") from None
    for cast in (int, float):  # the value was None or a string: take the most specific reading
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _machine_workers():
    """The cores this process may use, at most 16 (the reference's number, for a large machine)."""
    return max(1, min(16, usable_cores()))


hparams = HParams(
    # Audio: the mel spectrogram both networks were trained on.
    num_mels=80,
    use_lws=False,
    n_fft=800,
    hop_size=200,  # 12.5 ms at 16 kHz: 80 mel frames per second
    win_size=800,
    sample_rate=16000,
    frame_shift_ms=None,
    signal_normalization=True,
    allow_clipping_in_normalization=True,
    symmetric_mels=True,
    max_abs_value=4.0,
    preemphasize=True,
    preemphasis=0.97,
    min_level_db=-100,
    ref_level_db=20,
    fmin=55,
    fmax=7600,
    # Video and training.
    # The reference's img_size: the networks' face, 96 pixels a side as released, or 192 or 384
    # (models.inputs.FACE_SIZES: larger networks, recorded in every checkpoint).
    face_size=96,
    fps=25,
    batch_size=16,
    initial_learning_rate=1e-4,
    num_workers=_machine_workers(),  # data-loader processes: the reference's 16 on a machine that has them
    checkpoint_interval=3000,
    eval_interval=3000,
    save_optimizer_state=True,
    syncnet_wt=0.0,  # raised during training once the expert agrees (see the trainers)
    syncnet_batch_size=64,
    syncnet_lr=1e-4,
    syncnet_eval_interval=10000,
    syncnet_checkpoint_interval=10000,
    # Not the reference's: an expert whose evaluation loss stays at chance this many steps is warned about.
    syncnet_chance_warning_steps=20000,
    # Not the reference's: the expert's loss, bce (the reference's) or infonce (in-batch negatives, opt-in).
    expert_loss="bce",
    disc_wt=0.07,
    disc_initial_learning_rate=1e-4,
)


def _whole(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _finite(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and within(value, -math.inf)


# What each value must be: (in words, test). Every --hparams of every script is checked against it.
_ABOVE_ZERO = ("a whole number above 0", lambda v: _whole(v) and v > 0)
_COUNT = ("a whole number, 0 or more", lambda v: _whole(v) and v >= 0)
_POSITIVE = ("a finite number above 0", lambda v: _finite(v) and v > 0)
_NEGATIVE = ("a finite number below 0", lambda v: _finite(v) and v < 0)
_FINITE = ("a finite number", _finite)
_NOT_NEGATIVE = ("a finite number, 0 or more", lambda v: _finite(v) and v >= 0)
_WEIGHT = ("a number from 0 to 1", lambda v: _finite(v) and 0 <= v <= 1)
_FLAG = ("true or false", lambda v: isinstance(v, bool))

RULES = {
    "num_mels": _ABOVE_ZERO,
    "use_lws": ("false (only librosa's STFT is supported)", lambda v: v is False),
    "n_fft": _ABOVE_ZERO,
    "hop_size": ("a whole number above 0, or none with frame_shift_ms set", lambda v: v is None or _ABOVE_ZERO[1](v)),
    "win_size": _ABOVE_ZERO,
    "sample_rate": _ABOVE_ZERO,
    "frame_shift_ms": ("a finite number above 0, or none", lambda v: v is None or _POSITIVE[1](v)),
    "signal_normalization": _FLAG,
    "allow_clipping_in_normalization": _FLAG,
    "symmetric_mels": _FLAG,
    "max_abs_value": _POSITIVE,
    "preemphasize": _FLAG,
    "preemphasis": _WEIGHT,
    "min_level_db": _NEGATIVE,
    "ref_level_db": _FINITE,
    "fmin": _NOT_NEGATIVE,
    "fmax": _POSITIVE,
    "face_size": ("96, 192 or 384 (pixels a side)", lambda v: v in (96, 192, 384) and _whole(v)),
    "fps": _POSITIVE,
    "batch_size": _ABOVE_ZERO,
    "initial_learning_rate": _POSITIVE,
    "num_workers": _COUNT,
    "checkpoint_interval": _ABOVE_ZERO,
    "eval_interval": _ABOVE_ZERO,
    "save_optimizer_state": _FLAG,
    "syncnet_wt": _WEIGHT,
    "syncnet_batch_size": _ABOVE_ZERO,
    "syncnet_lr": _POSITIVE,
    "syncnet_eval_interval": _ABOVE_ZERO,
    "syncnet_checkpoint_interval": _ABOVE_ZERO,
    "syncnet_chance_warning_steps": _ABOVE_ZERO,
    "expert_loss": ("bce or infonce", lambda v: v in ("bce", "infonce")),
    "disc_wt": _WEIGHT,
    "disc_initial_learning_rate": _POSITIVE,
}


def check_values(values, prefix="--hparams: "):
    """Raise a UserError naming the first of ``values`` (name: value) out of its range in RULES,
    or the first pair of values that contradict each other; ``prefix`` says where they come from."""
    for name, value in values.items():
        if name in RULES and not RULES[name][1](value):
            raise UserError(f"{prefix}{name} must be {RULES[name][0]}, not {value}")
    if values["hop_size"] is None and values["frame_shift_ms"] is None:
        raise UserError(f"{prefix}hop_size must be a whole number above 0, or none with frame_shift_ms set, not None")
    if values["win_size"] > values["n_fft"]:
        raise UserError(f"{prefix}win_size must be at most n_fft ({values['n_fft']}), not {values['win_size']}")
    nyquist = values["sample_rate"] // 2
    if not values["fmin"] < values["fmax"] <= nyquist:
        raise UserError(f"{prefix}fmax must be above fmin ({values['fmin']}) and at most half of sample_rate "
                        f"({nyquist}), not {values['fmax']}")


def add_hparams_argument(parser: argparse.ArgumentParser):
    parser.add_argument(
        "--hparams", default="", metavar="NAME=VALUE,...",
        help='override hyper-parameters of hparams.py, e.g. --hparams "batch_size=8,num_workers=2"',
    )


def apply_hparams_argument(args, from_file=None, where="--config"):
    """Apply a --config file's hyper-parameters ``from_file`` (a mapping, or the text --hparams
    takes; ``where`` names the file), then ``args.hparams``, to the global hparams, once every
    value is known to be of its type and in range; a bad entry is a UserError naming it, and
    nothing is applied."""
    trial = copy.deepcopy(hparams)
    try:
        if isinstance(from_file, str):
            trial.parse(from_file)
        else:
            for name, value in (from_file or {}).items():
                trial.set_hparam(name, trial.checked(name, value))
    except ValueError as error:
        within = "hparams: " if isinstance(from_file, str) else "hparams."
        raise UserError(f"{where}: {within}{error}".replace(" in --hparams", "")) from None
    if from_file:
        check_values(trial.values(), f"{where}: hparams.")
    try:
        check_values(trial.parse(getattr(args, "hparams", "")).values())
    except ValueError as error:
        raise UserError(str(error)) from None
    for name, value in trial.values().items():
        hparams.set_hparam(name, value)
    return hparams
