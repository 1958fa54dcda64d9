"""--config FILE: a trainer's flags and hyper-parameters from a YAML or JSON file, the command
line over them; a run's run.json repeats that run; a bad file is one line naming it and the key."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest
import test_training
from conftest import ROOT
from test_training import FAST, flags, hparams_kept, same_state

import color_syncnet_train
import hq_wav2lip_train
import wav2lip_train
from hparams import hparams
from models.checkpoint import read_checkpoint
from system import cli
from training.command_line import parse_config
from training.objectives import (
    ExpertObjective,
    GANGeneratorObjective,
    GeneratorObjective,
)

# test_training's fixtures: the tiny synthetic corpus, and hparams put back after each test
corpus, restore_hparams = test_training.corpus, test_training.restore_hparams


def expert_config(argv):
    return parse_config(ExpertObjective, color_syncnet_train.build_parser, [str(part) for part in argv])


def test_a_yaml_file_gives_flags_and_hyper_parameters_and_the_command_line_overrides_them(corpus, tmp_path):
    file = tmp_path / "expert.yaml"
    file.write_text(f"data_root: {corpus}\ncheckpoint_dir: {tmp_path / 'out'}\n"
                    f"filelists: {corpus / 'filelists'}\n"  # the older spelling of filelist_dir
                    "keep_last: 3\nseed: 5\namp: off\nquiet: true\nmax_steps: null\n"
                    "hparams:\n  syncnet_batch_size: 8\n  syncnet_lr: 2e-4\n  syncnet_eval_interval: 7\n")
    config = expert_config(["--config", file, "--seed", "6", "--hparams", "syncnet_lr=3e-4"])
    assert (config.data_root, config.filelist_dir, config.keep_last, config.seed, config.amp, config.quiet,
            config.max_steps) == (str(corpus), str(corpus / "filelists"), 3, 6, "off", True, None)
    # the file's hyper-parameters, then --hparams's ("2e-4" is text to YAML: taken as the number it writes)
    assert (config.hparams["syncnet_batch_size"], config.hparams["syncnet_lr"], config.hparams["syncnet_eval_interval"]) \
        == (8, 3e-4, 7)
    assert hparams.overridden() == ["syncnet_batch_size", "syncnet_eval_interval", "syncnet_lr"]


def test_a_json_file_does_the_same_without_importing_yaml(corpus, tmp_path):
    file = tmp_path / "expert.json"
    file.write_text(json.dumps({"data_root": str(corpus), "checkpoint_dir": str(tmp_path / "out"), "resume": True,
                                "hparams": "syncnet_batch_size=8,num_workers=0"}))
    config = expert_config(["--config", file])
    assert (config.resume, config.hparams["syncnet_batch_size"], config.hparams["num_workers"]) == (True, 8, 0)
    code = ("import sys; import color_syncnet_train; from training.command_line import parse_config; "
            f"parse_config(color_syncnet_train.ExpertObjective, color_syncnet_train.build_parser, "
            f"['--config', {str(file)!r}]); print('yaml' in sys.modules)")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert shown.stdout == "False\n"


@pytest.mark.parametrize("name, text, message", [
    ("absent.yaml", None, "no such file"),
    ("flags.txt", "seed: 1\n", "name a .yaml, .yml or .json file"),
    ("broken.json", '{"seed": 1,', "not valid JSON (Expecting property name enclosed in double quotes: line 1 "
                                    "column 12 (char 11))"),
    ("broken.yaml", "seed: 1\nkeep_last: 2: 3\n", "not valid YAML (mapping values are not allowed here at line 2, "
                                                "column 13)"),
    ("list.yaml", "- seed\n", "holds list, not a mapping of flag names to values"),
    ("empty.yaml", "", "holds nothing, not a mapping of flag names to values"),
    ("typo.yaml", "sead: 1\n", "unknown key 'sead': not a flag of this script nor \"hparams\" (did you mean 'seed'?)"),
    ("other.yaml", "syncnet_checkpoint_path: expert.pth\n", "syncnet_checkpoint_path is not a flag of "
                                                            "color_syncnet_train.py"),
    ("text.yaml", "seed: '5'\n", "seed must be a whole number, not '5'"),
    ("switch.yaml", "resume: 1\n", "resume must be true or false, not 1"),
    ("choice.yaml", "amp: fast\n", "amp must be one of auto, on, off, fp16, bf16, not 'fast'"),
    ("hp.yaml", "hparams: [1]\n", "hparams must be a mapping of hyper-parameter names to values, not [1]"),
    ("hp_name.yaml", "hparams: {batchsize: 8}\n", "hparams.batchsize is not a hyper-parameter (known: "),
    ("hp_type.yaml", "hparams: {batch_size: 8.5}\n", "hparams.batch_size must be a whole number, not 8.5"),
    ("hp_flag.yaml", "hparams: {save_optimizer_state: 'no'}\n", "hparams.save_optimizer_state must be true or false"),
    ("hp_range.yaml", "hparams: {batch_size: 0}\n", "hparams.batch_size must be a whole number above 0, not 0"),
    ("hp_text.yaml", "hparams: batch=8\n", "hparams: unknown hyper-parameter 'batch' (known: "),
    ("range.yaml", "keep_last: -3\n", "--keep_last must be "),
    ("twice.yaml", "seed: 1\nseed: 2\n", "not valid YAML (the key 'seed' is given twice at line 2, column 1)"),
    ("twice.json", '{"seed": 1, "seed": 2}', "not valid JSON (the key 'seed' is given twice)"),
    ("empty.json", " \n", "holds nothing, not a mapping of flag names to values"),  # a value's range, checked after parsing
    ("nested.yaml", "config: other.yaml\n", "a config file cannot name another (config: 'other.yaml')"),
])
def test_a_bad_file_is_one_line_naming_it_and_the_key(corpus, tmp_path, capsys, name, text, message):
    file = tmp_path / name
    if text is not None:
        file.write_text(text)
    argv = ["--config", str(file), "--data_root", str(corpus), "--checkpoint_dir", str(tmp_path / "out")]
    assert cli.run(color_syncnet_train.main, argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: --config {file}: {message}") and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_flags_the_file_gives_are_no_longer_required_on_the_command_line(corpus, tmp_path, capsys):
    file = tmp_path / "gan.yaml"
    file.write_text(f"data_root: {corpus}\ncheckpoint_dir: {tmp_path / 'out'}\n"
                    f"syncnet_checkpoint_path: {corpus / 'expert.pth'}\ndisc_checkpoint_path: d.pth\n")
    config = parse_config(GANGeneratorObjective, hq_wav2lip_train.build_parser, ["--config", str(file)])
    assert (config.syncnet_checkpoint_path, config.disc_checkpoint_path) == (str(corpus / "expert.pth"),
                                                                             os.path.abspath("d.pth"))
    file.write_text(f"data_root: {corpus}\n")  # --checkpoint_dir is still required: argparse says so
    with pytest.raises(SystemExit):
        parse_config(GANGeneratorObjective, hq_wav2lip_train.build_parser, ["--config", str(file)])
    assert "the following arguments are required: --checkpoint_dir, --syncnet_checkpoint_path" in capsys.readouterr().err


def test_run_json_records_absolute_paths_so_the_run_repeats_from_any_folder(corpus, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["--data_root", os.path.relpath(corpus), "--checkpoint_dir", "out", "--filelist_dir",
            os.path.relpath(corpus / "filelists")]
    config = parse_config(ExpertObjective, color_syncnet_train.build_parser, argv)
    assert (config.data_root, config.checkpoint_dir, config.filelist_dir) == \
        (str(corpus), str(tmp_path / "out"), str(corpus / "filelists"))
    (tmp_path / "out").mkdir()
    config.write_run_file()
    monkeypatch.chdir(tmp_path / "out")  # elsewhere: the relative paths typed would name nothing here
    assert parse_config(ExpertObjective, color_syncnet_train.build_parser, ["--config", "run.json"]) == config


def test_a_value_out_of_range_on_the_command_line_is_not_blamed_on_the_file(corpus, tmp_path, capsys):
    file = tmp_path / "run.yaml"
    file.write_text("keep_last: 2\n")
    argv = ["--config", str(file), "--data_root", str(corpus), "--checkpoint_dir", str(tmp_path / "out"),
            "--keep_last", "-3"]
    assert cli.run(color_syncnet_train.main, argv) == 1
    assert capsys.readouterr().err.startswith("error: --keep_last must be ")


def test_run_json_is_a_config_that_gives_the_same_configuration(corpus, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no filelists/ here
    out = tmp_path / "wav2lip"
    argv = flags(corpus, out, "--syncnet_checkpoint_path", corpus / "expert.pth", "--seed", "9", "--keep_last", "2",
                 "--max_steps", "4", "--amp", "off", "--log_interval", "3", hparams_=FAST + ",initial_learning_rate=3e-4")
    with hparams_kept():
        original = parse_config(GeneratorObjective, wav2lip_train.build_parser, [str(part) for part in argv])
    out.mkdir()
    original.write_run_file()  # as the run writes it
    assert hparams.values() != original.hparams  # the run's values come from the file alone
    repeat = parse_config(GeneratorObjective, wav2lip_train.build_parser, ["--config", str(out / "run.json")])
    assert repeat == original

    # Filelists the run found in <data_root>/filelists are named by the file: only how they were found differs.
    argv.remove("--filelist_dir")
    argv.remove(str(corpus / "filelists"))
    with hparams_kept():
        found = parse_config(GeneratorObjective, wav2lip_train.build_parser, [str(part) for part in argv])
    found.write_run_file()
    repeat = parse_config(GeneratorObjective, wav2lip_train.build_parser, ["--config", str(out / "run.json")])
    assert found.filelists_from_data_root and repeat == dataclasses.replace(found, filelists_from_data_root=False)


def test_a_run_repeated_from_its_run_json_trains_the_same_weights(corpus, tmp_path):
    first, again = tmp_path / "first", tmp_path / "again"
    assert color_syncnet_train.main(flags(corpus, first, "--max_steps", "2", "--seed", "3")) == 0
    hparams.parse("syncnet_batch_size=2,syncnet_lr=0.5,num_workers=1")  # the file must give the run's own
    assert color_syncnet_train.main(["--config", str(first / "run.json"), "--checkpoint_dir", str(again)]) == 0
    same_state(read_checkpoint(first / "checkpoint_step000000002.pth"),
               read_checkpoint(again / "checkpoint_step000000002.pth"))
    assert json.loads((again / "run.json").read_text()) == {**json.loads((first / "run.json").read_text()),
                                                            "checkpoint_dir": str(again)}


def test_another_trainer_s_run_json_is_refused_in_one_line(corpus, tmp_path, capsys):
    out = tmp_path / "expert"
    out.mkdir()
    expert_config(flags(corpus, out)).write_run_file()
    for main in (wav2lip_train.main, hq_wav2lip_train.main):
        assert cli.run(main, ["--config", str(out / "run.json")]) == 1
        name, script = ("Wav2Lip", "wav2lip_train.py") if main is wav2lip_train.main else \
            ("Wav2Lip + visual-quality GAN", "hq_wav2lip_train.py")
        assert capsys.readouterr().err == (f"error: --config {out / 'run.json'} records a run of 'expert SyncNet', not "
                                           f"of '{name}' ({script}); give it to the trainer that wrote it\n")


def test_resume_on_the_command_line_takes_the_newest_checkpoint_not_the_one_the_file_names(corpus, tmp_path):
    file = tmp_path / "fine_tune.json"
    file.write_text(json.dumps({"data_root": str(corpus), "checkpoint_dir": str(tmp_path / "out"),
                                "checkpoint_path": "released.pth", "max_steps": 9}))
    assert expert_config(["--config", file]).checkpoint_path == os.path.abspath("released.pth")
    resumed = expert_config(["--config", file, "--resume"])
    assert (resumed.checkpoint_path, resumed.resume, resumed.max_steps) == (None, True, 9)
    chosen = expert_config(["--config", file, "--resume", "--checkpoint_path", "other.pth"])
    assert chosen.checkpoint_path == os.path.abspath("other.pth")


def test_the_older_filelists_flag_still_parses_everywhere(corpus, tmp_path):
    import make_filelists
    import synthetic_corpus

    assert expert_config(["--data_root", corpus, "--checkpoint_dir", tmp_path, "--filelists", "lists"]).filelist_dir \
        == os.path.abspath("lists")
    assert make_filelists.build_parser().parse_args(["--preprocessed_root", "p", "--filelists", "l"]).filelist_dir == "l"
    assert synthetic_corpus.build_parser().parse_args(["--out", "o", "--filelists", "l"]).filelist_dir == "l"
    assert "--filelists" not in color_syncnet_train.build_parser().format_help()
