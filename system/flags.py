"""One vocabulary of flags: the thing every script takes is declared here once, under one name,
with one help text and one default; an older spelling of it still parses but is left out of
--help. A script's parser comes from ``argument_parser``, which shows every default."""

import argparse

FACE_DET_BATCH_SIZE = 16  # the reference's inference.py; frames per S3FD batch in every script
WAV2LIP_BATCH_SIZE = 128  # the reference's inference.py; faces per generator batch


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """--help shows each flag's default where there is one to show (not for on/off switches,
    nor None or an empty text), several values as they are typed (1280x720 1920x1080, not a
    Python list), and hides the older spellings of a flag."""

    def _get_help_string(self, action):
        if action.nargs == 0 or _is_switch(action) or action.default in (None, "", argparse.SUPPRESS) \
                or action.default is False:
            return action.help
        if isinstance(action.default, (list, tuple)) and action.nargs not in (None, "?"):  # several values
            typed = " ".join(map(str, action.default)).replace("%", "%%")  # help texts are %-formatted
            return f"{action.help} (default: {typed})"
        return super()._get_help_string(action)

    def _format_action_invocation(self, action):
        if action.option_strings and (action.nargs == 0 or _is_switch(action)):
            return ", ".join(_shown_spellings(action))
        if action.option_strings:
            value = self._format_args(action, self._get_default_metavar_for_optional(action))
            return ", ".join(f"{spelling} {value}" for spelling in _shown_spellings(action))
        return super()._format_action_invocation(action)

    def _format_args(self, action, default_metavar):
        if _is_switch(action):
            return ""
        return super()._format_args(action, default_metavar)


def _is_switch(action):
    """A flag given alone that also accepts a value for the reference's sake (--static True)."""
    return action.nargs == "?" and action.const is True


def _shown_spellings(action):
    return [s for s in action.option_strings if s not in getattr(action, "old_spellings", ())]


def argument_parser(doc):
    """The parser of a script: the first paragraph of ``doc`` as its description, defaults in
    --help. A flag is taken as spelled, never as the start of a longer one: an abbreviation
    would also match the hidden old spellings (--filelist: --filelist_dir or --filelists?), and
    a new flag would make an old abbreviation ambiguous."""
    return argparse.ArgumentParser(description=doc.split("\n\n")[0], formatter_class=HelpFormatter,
                                   allow_abbrev=False)


def flag(parser, name, *old_spellings, **settings):
    """``parser.add_argument(name, ...)`` that also takes each of ``old_spellings`` (hidden from --help)."""
    action = parser.add_argument(name, *old_spellings, **settings)
    action.old_spellings = frozenset(old_spellings)
    return action


def add_run_flags(parser):
    """--device, --quiet and --verbose, as every script that runs a network takes them."""
    parser.add_argument("--device", default="auto", help="auto (CUDA, else Apple MPS, else the CPU), cpu, cuda, cuda:1, mps")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or loading lines")
    parser.add_argument("--verbose", action="store_true",
                        help="show tracebacks, and each note a normal run gives once or leaves out")


def add_verbose_flag(parser):
    """--verbose alone, for the scripts that run no network."""
    parser.add_argument("--verbose", action="store_true", help="show tracebacks")


def add_detector_flag(parser):
    """The S3FD weights, as every script that detects faces names them (dest ``detector_path``)."""
    flag(parser, "--detector_checkpoint_path", "--detector_path", "--detector_weights", dest="detector_path", metavar="PATH",
         help="S3FD weights (default: face_detection/detection/sfd/s3fd.pth)")


def add_face_det_batch_flag(parser, *old_spellings):
    """Frames per S3FD batch, as every script that detects faces takes it."""
    flag(parser, "--face_det_batch_size", *old_spellings, dest="face_det_batch_size", type=int,
         default=FACE_DET_BATCH_SIZE, metavar="N",
         help="frames per S3FD batch (larger is faster on a GPU with memory to spare)")


def add_wav2lip_batch_flag(parser, *old_spellings):
    """Faces per generator batch, as inference and the benchmarks take it."""
    flag(parser, "--wav2lip_batch_size", *old_spellings, dest="wav2lip_batch_size", type=int,
         default=WAV2LIP_BATCH_SIZE, metavar="N", help="frames per generator batch")


def add_syncnet_flag(parser, help, *old_spellings, **settings):
    """A SyncNet's weights (the expert, or LSE's syncnet_v2.model), as every script names them."""
    flag(parser, "--syncnet_checkpoint_path", *old_spellings, dest="syncnet_checkpoint_path", metavar="PATH",
         help=help, **settings)


def add_filelist_dir_flag(parser, help):
    """A folder of train.txt, val.txt and test.txt (``--filelist`` is always one file)."""
    flag(parser, "--filelist_dir", "--filelists", dest="filelist_dir", metavar="DIR", help=help)


def add_seed_flag(parser, help="seeds the random choices, so that a rerun gives the same result"):
    parser.add_argument("--seed", type=int, default=0, help=help)

