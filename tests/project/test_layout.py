"""The layout shows the architecture: scripts at the top and in evaluation/, the two pipelines
in their packages, and no script reaching into the other pipeline for what it needs."""

import ast
import json
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

SCRIPTS = ["inference.py", "dub.py", "preprocess.py", "color_syncnet_train.py", "wav2lip_train.py", "hq_wav2lip_train.py",
           "make_filelists.py", "synthetic_corpus.py", "export.py", "merge_shards.py", "sync_audit.py", "stream.py", "serve.py",
           "evaluation/gen_videos_from_filelist.py",
           "evaluation/real_videos_inference.py", "evaluation/fid.py",
           "evaluation/scores_LSE/calculate_scores_LRS.py", "evaluation/scores_LSE/calculate_scores_real_videos.py"]
FOUNDATIONS = ["hparams.py", "audio.py"]
# Each package and the layer it sits in: a module imports only from lower layers and its own package.
LAYERS = {"system": 0, "hparams": 1, "media": 1, "models": 1, "audio": 2, "face_detection": 2, "lipsync": 3,
          "training": 3, "dubbing": 4, "serving": 4, "evaluation": 4, "deployment": 5}


def test_the_top_level_holds_scripts_and_shared_foundations_only():
    top_level = sorted(path.name for path in ROOT.glob("*.py"))
    assert top_level == sorted(name for name in SCRIPTS + FOUNDATIONS if "/" not in name)
    for package in [*(name for name in LAYERS if not (ROOT / f"{name}.py").exists()), "evaluation/metrics"]:
        assert (ROOT / package / "__init__.py").is_file(), package
    # evaluation/ holds its scripts and, beside them, what only they run: test-set generation and its command line
    evaluation = sorted(f"evaluation/{path.name}" for path in (ROOT / "evaluation").glob("*.py"))
    assert evaluation == sorted(["evaluation/__init__.py", "evaluation/generation.py", "evaluation/command_line.py",
                                 "evaluation/sync_audit.py"]
                                + [s for s in SCRIPTS if s.count("/") == 1])


def module_path(name):
    path = ROOT.joinpath(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def imports():
    """{module: the project's modules it imports, anywhere in it} of the library and the scripts."""
    modules = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if not {"tests", "benchmarks"} & set(parts) and not any(part.startswith(".") for part in parts):
            modules[".".join(parts).removesuffix(".__init__")] = path
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        graph[name] = {target for target in found if target in modules and target != name}
    return graph


def test_no_import_runs_up_the_layers_and_no_modules_import_each_other():
    graph = imports()
    scripts = {script.removesuffix(".py").replace("/", ".") for script in SCRIPTS}
    upward = [(name, target) for name, targets in graph.items() if name not in scripts for target in targets
              if target in scripts or LAYERS[target.split(".")[0]] > LAYERS[name.split(".")[0]]
              or (LAYERS[target.split(".")[0]] == LAYERS[name.split(".")[0]]
                  and target.split(".")[0] != name.split(".")[0])]
    assert upward == []
    for start in graph:  # no cycle, through any number of modules
        seen, todo = set(), [start]
        while todo:
            for target in graph[todo.pop()] - seen:
                seen.add(target)
                todo.append(target)
        assert start not in seen, start


def test_library_code_never_imports_the_command_line_module():
    """system.cli (one-line errors, exit statuses) and system.flags (the flags every script
    shares) are for the scripts and for the modules named command_line that hold a package's
    flags: a library module that imports them takes its work from the command line instead of
    from its caller."""
    scripts = {script.removesuffix(".py").replace("/", ".") for script in SCRIPTS}
    importers = sorted(name for name, targets in imports().items() if {"system.cli", "system.flags"} & targets)
    assert {"inference", "lipsync.command_line", "training.command_line", "evaluation.command_line"} <= set(importers)
    run_as_module = {name for name in importers if 'if __name__ == "__main__":' in module_path(name).read_text()}
    assert run_as_module - scripts == {"training.report"}  # python -m training.report
    library = [name for name in importers if name not in scripts | run_as_module and name.split(".")[-1] != "command_line"]
    assert library == []


# Runs each script as __main__ with --help, one after another in one interpreter (torch loads once).
HELP = """
import contextlib, io, json, os, runpy, sys
shown = {}
for script in sys.argv[1:]:
    sys.argv, out = [script, "--help"], io.StringIO()
    sys.path.insert(0, os.path.dirname(script))  # as `python script.py` does
    with contextlib.redirect_stdout(out):
        try:
            runpy.run_path(script, run_name="__main__")
        except SystemExit as done:
            code = done.code
    shown[script] = (code, out.getvalue())
print(json.dumps(shown))
"""


def test_every_script_answers_help_from_any_directory_with_its_defaults(tmp_path):
    done = subprocess.run([sys.executable, "-c", HELP, *(str(ROOT / script) for script in SCRIPTS)],
                          capture_output=True, text=True, cwd=tmp_path)
    shown = {Path(script).relative_to(ROOT).as_posix(): value for script, value in json.loads(done.stdout).items()}
    assert sorted(shown) == sorted(SCRIPTS), done.stderr
    for script, (code, text) in shown.items():
        assert code == 0 and text.startswith("usage:"), (script, text)
        # merge_shards.py has no flag with a default to show
        assert ("(default: " in text or script == "merge_shards.py") and "(default: None)" not in text \
            and "(default: False)" not in text, script
    # One name for the S3FD weights everywhere (tests/project/test_flags.py: the older ones still work, unlisted).
    detecting = [script for script, (_, text) in shown.items() if "--detector_checkpoint_path" in text]
    assert sorted(detecting) == sorted(["inference.py", "dub.py", "stream.py", "serve.py", "preprocess.py",
                                        "evaluation/gen_videos_from_filelist.py",
                                        "evaluation/real_videos_inference.py",
                                        "evaluation/scores_LSE/calculate_scores_real_videos.py"])
    assert not any("--detector_weights" in text or "--detector_path" in text for _, text in shown.values())


def test_scoring_and_training_do_not_load_the_inference_pipeline():
    code = ("import sys\n"
            "import evaluation.scores_LSE.calculate_scores_real_videos, evaluation.fid, training.loop, preprocess\n"
            "print(sorted(name for name in sys.modules if name.startswith('lipsync')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "[]"
