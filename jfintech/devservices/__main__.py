"""``python -m jfintech.devservices up|env|stop [--dir DIR]``."""

import argparse
import shlex
from pathlib import Path

from jfintech import devservices


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m jfintech.devservices")
    parser.add_argument("command", choices=["up", "env", "stop"])
    parser.add_argument("--dir", type=Path, default=devservices.DEFAULT_DIR)
    args = parser.parse_args()
    if args.command == "stop":
        stopped = devservices.stop(args.dir)
        print("stopped: " + (", ".join(stopped) or "nothing was running"))
        return
    urls = devservices.ensure(args.dir)
    for key, value in urls.items():
        print(f"export {key}={shlex.quote(value)}" if args.command == "env" else f"{key}={value}")


if __name__ == "__main__":
    main()
