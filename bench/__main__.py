"""`make bench`: run every benchmark in bench/ at full size, one after the other, and print figures."""

import importlib
import pkgutil
import sys
from pathlib import Path


def main() -> int:
    names = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)])
                   if not m.name.startswith(("_", "test_")))  # fmt: skip
    failed = []
    for name in names:
        print(f"== bench.{name}", flush=True)
        module = importlib.import_module(f"bench.{name}")
        if hasattr(module, "main") and module.main([]) not in (0, None):
            failed.append(name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
