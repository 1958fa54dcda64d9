import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the project's top-level modules, however pytest is started
sys.path.insert(1, str(ROOT / "tests"))  # tests/support, the helpers every test folder shares
