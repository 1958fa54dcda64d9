import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the project's top-level modules, however pytest is started
sys.path.insert(1, str(ROOT / "tests"))  # tests/support, the helpers every test folder shares

# A suite started in the background (`nohup ... &`, a job without job control) inherits Ctrl-C
# ignored, and so would every script it starts: the tests that press Ctrl-C need it heard.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
