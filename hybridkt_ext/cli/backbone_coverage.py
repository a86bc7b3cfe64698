"""Which backbones of the configs mmseg ships hybrid forward can use, as a markdown table.

Walks the installed package's configs (``mmseg/.mim/configs``), counts the configs per backbone
type, and says for each type whether it can be a student and a teacher or why not. What
"can" means is tested by tests/for_mmseg/test_backbone_coverage.py (three paths and backward
at two image sizes, as student and as teacher).

  hybridkt-backbone-coverage
"""
from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path


import mmseg
from mmengine.config import Config

from hybridkt_ext.for_mmseg import NOT_A_CHAIN, supported_types


def shipped_backbone_types(root: Path) -> tuple[Counter, int, int]:
    """Configs per backbone type, and how many configs were read / could not be parsed."""
    types: Counter = Counter()
    read = failed = 0
    for path in sorted(root.rglob("*.py")):
        if "_base_" in path.parts:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cfg = Config.fromfile(str(path))
        except Exception:  # configs that need optional packages just to be parsed
            failed += 1
            continue
        read += 1
        backbone = (cfg.get("model") or {}).get("backbone")
        if backbone:
            types[backbone.get("type")] += 1
    return types, read, failed


def main() -> None:
    root = Path(mmseg.__file__).parent / ".mim" / "configs"
    types, read, failed = shipped_backbone_types(root)
    works = set(supported_types())
    print(f"mmseg {mmseg.__version__}: {read} configs read ({failed} need packages not "
          f"installed), {len(types)} backbone types\n")
    print("| backbone type | configs | student | teacher | why not |")
    print("|---|---|---|---|---|")
    covered = 0
    for kind, count in sorted(types.items(), key=lambda kv: (-kv[1], kv[0])):
        name = kind.rsplit(".", 1)[-1] if not kind.startswith("mmpretrain.") else kind
        if name in works or kind in works:
            covered += count
            print(f"| {kind} | {count} | yes | yes | |")
        else:
            reason = NOT_A_CHAIN.get(name, "no splitter")
            print(f"| {kind} | {count} | no | no | {reason} |")
    total = sum(types.values())
    print(f"\n{covered} of {total} configs ({100 * covered / total:.0f}%) have a backbone "
          "hybrid forward can split.")


if __name__ == "__main__":
    main()
