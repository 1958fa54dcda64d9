"""The one exception type for problems with the user's input (files, flags, checkpoints).

Scripts print its message as a single line and exit non-zero (see ``cli.run``); anything
else that escapes is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input that the user can fix; the message says what is wrong and, if known, what to do."""
