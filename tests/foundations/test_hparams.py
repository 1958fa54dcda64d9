import argparse

import pytest

from hparams import HParams, add_hparams_argument, apply_hparams_argument, hparams
from system.errors import UserError
from system.processes import usable_cores

RELEASED = dict(
    num_mels=80, use_lws=False, n_fft=800, hop_size=200, win_size=800,
    sample_rate=16000, frame_shift_ms=None, signal_normalization=True, allow_clipping_in_normalization=True,
    symmetric_mels=True, max_abs_value=4.0, preemphasize=True, preemphasis=0.97, min_level_db=-100,
    ref_level_db=20, fmin=55, fmax=7600, face_size=96, fps=25, batch_size=16, initial_learning_rate=1e-4,
    num_workers=max(1, min(16, usable_cores())), checkpoint_interval=3000, eval_interval=3000, save_optimizer_state=True, syncnet_wt=0.0,
    syncnet_batch_size=64, syncnet_lr=1e-4, syncnet_eval_interval=10000, syncnet_checkpoint_interval=10000,
    disc_wt=0.07, disc_initial_learning_rate=1e-4,
)


def test_values_are_the_released_models():
    for name, value in RELEASED.items():
        assert getattr(hparams, name) == value, name
        assert type(getattr(hparams, name)) is type(value), name


def test_num_workers_is_what_the_machine_has_not_the_reference_s_16():
    # The reference's 16 started 16 data-loader processes on a 2-core machine; its batches do not
    # depend on the number (tests/training/test_run_lines.py).
    assert hparams.num_workers == max(1, min(16, usable_cores()))  # the cores this process may use, at most 16
    assert "num_workers=" + str(hparams.num_workers) + "," in hparams.summary()  # not marked as changed


def test_set_and_parse_with_types():
    params = HParams(batch_size=16, lr=1e-4, flag=True, name=None)
    params.set_hparam("batch_size", 8)
    assert params.batch_size == 8
    params.parse("batch_size=4, lr=3e-4,flag=false,name=12")
    assert (params.batch_size, params.lr, params.flag, params.name) == (4, 3e-4, False, 12)
    assert type(params.batch_size) is int and type(params.lr) is float
    params.parse("name=none")
    assert params.name is None


@pytest.mark.parametrize("overrides, message", [
    ("batchsize=8", "unknown hyper-parameter 'batchsize'"),
    ("batch_size=eight", "batch_size wants a int"),
    ("flag=maybe", "flag wants true or false"),
    ("batch_size", "not of the form name=value"),
])
def test_parse_rejects_bad_overrides(overrides, message):
    params = HParams(batch_size=16, flag=True)
    with pytest.raises(ValueError, match=message):
        params.parse(overrides)
    assert params.batch_size == 16
    with pytest.raises(ValueError, match="unknown hyper-parameter"):
        params.set_hparam("nope", 1)
    with pytest.raises(AttributeError):
        params.nope


def test_hparams_survive_pickling_for_worker_processes():
    import copy
    import pickle

    params = HParams(batch_size=16).parse("batch_size=3")
    for clone in (pickle.loads(pickle.dumps(params)), copy.deepcopy(params)):
        assert clone.batch_size == 3 and clone.values() == {"batch_size": 3}


def test_summary_lists_every_value():
    text = str(hparams)
    assert text.startswith("Hyperparameters:")
    for name in RELEASED:
        assert f"  {name} " in text


def test_command_line_overrides_are_shared_and_checked():
    parser = argparse.ArgumentParser()
    add_hparams_argument(parser)
    saved = hparams.values()
    try:
        apply_hparams_argument(parser.parse_args(["--hparams", "batch_size=8,num_workers=2"]))
        assert (hparams.batch_size, hparams.num_workers) == (8, 2)
        with pytest.raises(UserError, match="unknown hyper-parameter 'batch'"):
            apply_hparams_argument(parser.parse_args(["--hparams", "batch=8"]))
    finally:
        hparams.parse(",".join(f"{k}={v}" for k, v in saved.items()))
    assert hparams.values() == saved


def test_the_summary_marks_what_hparams_changed():
    params = HParams(batch_size=16, lr=1e-4)
    assert params.overridden() == []
    params.parse("lr=3e-4")
    assert params.overridden() == ["lr"]
    assert params.summary() == "hyper-parameters (* set by --hparams or --config): batch_size=16, lr=0.0003*"


@pytest.mark.parametrize("overrides, message", [
    ("batch_size=0", "batch_size must be a whole number above 0, not 0"),
    ("syncnet_batch_size=-4", "syncnet_batch_size must be a whole number above 0, not -4"),
    ("batch_size=none", "batch_size must be a whole number above 0, not None"),
    ("num_workers=-1", "num_workers must be a whole number, 0 or more, not -1"),
    ("checkpoint_interval=0", "checkpoint_interval must be a whole number above 0, not 0"),
    ("syncnet_eval_interval=-5", "syncnet_eval_interval must be a whole number above 0, not -5"),
    ("fps=0", "fps must be a finite number above 0, not 0"),
    ("initial_learning_rate=nan", "initial_learning_rate must be a finite number above 0, not nan"),
    ("syncnet_lr=inf", "syncnet_lr must be a finite number above 0, not inf"),
    ("disc_initial_learning_rate=0", "disc_initial_learning_rate must be a finite number above 0, not 0.0"),
    ("sample_rate=0", "sample_rate must be a whole number above 0, not 0"),
    ("num_mels=0", "num_mels must be a whole number above 0, not 0"),
    ("max_abs_value=nan", "max_abs_value must be a finite number above 0, not nan"),
    ("min_level_db=0", "min_level_db must be a finite number below 0, not 0"),
    ("ref_level_db=none", "ref_level_db must be a finite number, not None"),
    ("preemphasis=inf", "preemphasis must be a number from 0 to 1, not inf"),
    ("syncnet_wt=1.5", "syncnet_wt must be a number from 0 to 1, not 1.5"),
    ("disc_wt=nan", "disc_wt must be a number from 0 to 1, not nan"),
    ("min_level_db=" + "9" * 400, "min_level_db must be a finite number below 0, not " + "9" * 400),  # not OverflowError
    ("preemphasize=none", "preemphasize must be true or false, not None"),
    ("use_lws=true", "use_lws must be false (only librosa's STFT is supported), not True"),
    ("win_size=1024", "win_size must be at most n_fft (800), not 1024"),
    ("fmax=9000", "fmax must be above fmin (55) and at most half of sample_rate (8000), not 9000"),
    ("fmin=8000", "fmax must be above fmin (8000) and at most half of sample_rate (8000), not 7600"),
    ("hop_size=none", "hop_size must be a whole number above 0, or none with frame_shift_ms set, not None"),
])
def test_values_out_of_range_are_refused_in_one_line(overrides, message):
    parser = argparse.ArgumentParser()
    add_hparams_argument(parser)
    saved = hparams.values()
    with pytest.raises(UserError) as refused:
        apply_hparams_argument(parser.parse_args(["--hparams", overrides]))
    assert str(refused.value) == f"--hparams: {message}"
    assert hparams.values() == saved  # nothing applied


def test_every_value_has_a_range_and_the_released_ones_are_in_it():
    from hparams import RULES, check_values

    assert sorted(RULES) == sorted(hparams.values())
    check_values(hparams.values())
    check_values({**hparams.values(), "hop_size": None, "frame_shift_ms": 12.5, "num_workers": 0, "fps": 29.97})
