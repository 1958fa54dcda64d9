"""--config FILE: a script's flags and hyper-parameters from a YAML or JSON file, under its
command line, which overrides them.

The file is a mapping of flag names, without "--" (any spelling the flag takes), to values of
the flag's type (true or false for a switch; null: not given), and of "hparams" to a
mapping of hyper-parameter names to values (or to the text --hparams takes), applied before
--hparams. A trainer's run.json (training/config.py) is such a file; the keys a script
records but takes no flag for (``recorded``) are handed back to it, to check, not set.
"""

import argparse
import difflib
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

from system.errors import UserError

FORMATS = {".yaml": "YAML", ".yml": "YAML", ".json": "JSON"}
HPARAMS_KEY = "hparams"


def add_config_flag(parser, more="; a run's run.json repeats that run"):
    parser.add_argument("--config", metavar="FILE",
                        help="a .yaml or .json file of flags (their names without --) and hyper-parameters (under "
                             f"\"hparams\"); the command line overrides it{more}")


@dataclass
class FromFile:
    """What a --config file held: the flags it set, its hyper-parameters, the keys no flag takes."""

    path: str | None = None
    flags: dict = field(default_factory=dict)  # {dest: value} it set
    hparams: dict | str | None = None
    recorded: dict = field(default_factory=dict)  # {key: value} of the keys no flag takes


def parse_with_config(parser, argv, recorded=()):
    """(``parser``'s arguments from ``argv``, FromFile): ``take_config`` then the command line."""
    from_file = take_config(parser, argv, recorded)
    return parser.parse_args(argv), from_file


def take_config(parser, argv, recorded=()):
    """The FromFile of the --config file ``argv`` names (an empty one without): the flags it
    gives become ``parser``'s defaults, which the command line overrides, and are no longer
    required there; a null is a flag not given."""
    path = _config_path(argv)
    if path is None:
        return FromFile()
    values, found = read_config(path), FromFile(path=path)
    spellings = {s[2:]: action for action in parser._actions for s in action.option_strings if s.startswith("--")}
    for key, value in values.items():
        if key == HPARAMS_KEY and not isinstance(value, (dict, str)):
            raise UserError(f"--config {path}: hparams must be a mapping of hyper-parameter names to values, "
                            f"not {value!r}")
        if key == HPARAMS_KEY:
            found.hparams = value
        elif key in spellings and key not in ("config", "help"):
            action = spellings[key]
            if value is not None:
                found.flags[action.dest] = flag_value(path, key, action, value)
                action.required = False
        elif key in recorded:
            found.recorded[key] = value
        elif key == "config":
            raise UserError(f"--config {path}: a config file cannot name another (config: {value!r})")
        else:
            close = difflib.get_close_matches(str(key), [*spellings, HPARAMS_KEY], n=1)
            raise UserError(f"--config {path}: unknown key {key!r}: not a flag of this script nor \"hparams\""
                            + (f" (did you mean {close[0]!r}?)" if close else ""))
    parser.set_defaults(**found.flags)
    return found


def blame_file(error, from_file, argv):
    """``error`` (a UserError about one flag, "--name ...") prefixed with the --config file
    when that flag's value came from the file, not from the command line ``argv``."""
    flag = str(error).split(" ", 1)[0]
    given = any(part == flag or part.startswith(flag + "=") for part in map(str, argv))
    if from_file.path and flag.startswith("--") and flag[2:] in from_file.flags and not given:
        return UserError(f"--config {from_file.path}: {error}")
    return error


def _config_path(argv):
    """The file --config names in ``argv`` (None: none, or a --config the parser will refuse)."""
    early = argparse.ArgumentParser(add_help=False, exit_on_error=False, allow_abbrev=False)
    early.add_argument("--config")
    try:
        return early.parse_known_args(argv)[0].config
    except argparse.ArgumentError:
        return None


def read_config(path):
    """The mapping a .yaml, .yml or .json file holds; anything else is one line naming it."""
    kind = FORMATS.get(Path(path).suffix.lower())
    if kind is None:
        raise UserError(f"--config {path}: name a .yaml, .yml or .json file")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"--config {path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"--config {path} is a folder; name a file") from None
    except UnicodeDecodeError:
        raise UserError(f"--config {path}: not UTF-8 text") from None
    if kind == "JSON":
        load, errors = functools.partial(json.loads, object_pairs_hook=_unique_keys), ValueError
    else:
        import yaml  # only for a YAML file

        load, errors = functools.partial(yaml.load, Loader=_unique_keys_yaml_loader()), yaml.YAMLError
    try:
        values = load(text) if text.strip() else None  # empty: "holds nothing", in JSON as in YAML
    except errors as error:
        raise UserError(f"--config {path}: not valid {kind} ({_where(error)})") from None
    if not isinstance(values, dict):
        raise UserError(f"--config {path}: holds {type(values).__name__ if values is not None else 'nothing'}, "
                        "not a mapping of flag names to values")
    return values


def _unique_keys(pairs):
    """A JSON object as a dict, refusing a key given twice (json takes the last silently)."""
    keys = [key for key, _ in pairs]
    twice = next((key for number, key in enumerate(keys) if key in keys[:number]), None)
    if twice is not None:
        raise ValueError(f"the key {twice!r} is given twice")
    return dict(pairs)


def _unique_keys_yaml_loader():
    """yaml.SafeLoader refusing a key given twice in a mapping (it takes the last silently)."""
    import yaml

    class UniqueKeys(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
            for number, key in enumerate(keys):
                if key in keys[:number]:
                    raise yaml.constructor.ConstructorError(None, None, f"the key {key!r} is given twice",
                                                            node.value[number][0].start_mark)
            return super().construct_mapping(node, deep)

    return UniqueKeys


def _where(error):
    """What a JSON or YAML parser found wrong, and on which line."""
    mark = getattr(error, "problem_mark", None)  # YAML's
    if mark is not None:
        return f"{error.problem or error.context} at line {mark.line + 1}, column {mark.column + 1}"
    return str(error).splitlines()[0]


def flag_value(path, key, action, value):
    """``value`` for the flag ``action`` as the file gives it (already typed by JSON or YAML),
    or one line naming the file and the key."""
    kind = bool if action.nargs == 0 else action.type or str
    if isinstance(value, bool) and action.choices and {"on", "off"} <= set(action.choices):
        value = "on" if value else "off"  # YAML reads on and off as true and false
    if kind is bool:
        right, wanted = isinstance(value, bool), "true or false"
    elif kind in (int, float):  # an int where a float is wanted is that float
        right = isinstance(value, int if kind is int else (int, float)) and not isinstance(value, bool)
        wanted, value = ("a whole number" if kind is int else "a number"), (kind(value) if right else value)
    elif kind is str:
        right, wanted = isinstance(value, str), "text"
    else:  # a flag that converts its text
        right, wanted = isinstance(value, str), "text"
        try:
            value = kind(value) if right else value
        except (ValueError, TypeError, argparse.ArgumentTypeError) as error:
            raise UserError(f"--config {path}: {key}: {error}") from None
    if right and action.choices and value not in action.choices:
        right, wanted = False, "one of " + ", ".join(map(str, action.choices))
    if not right:
        raise UserError(f"--config {path}: {key} must be {wanted}, not {value!r}")
    return value
