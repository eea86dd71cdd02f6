"""`python -m contracts export` regenerates contracts/generated/; `release` snapshots new schemas."""

from __future__ import annotations

import argparse

from contracts.export import export, release


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m contracts")
    parser.add_argument("command", choices=["export", "release"])
    args = parser.parse_args()
    paths = export() if args.command == "export" else release()
    for path in paths:
        print(path)


if __name__ == "__main__":
    main()
