"""Makes the repository root importable when the package is not installed (plain checkout)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
