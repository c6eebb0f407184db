"""`demo-data`: write the next day of the demo business where the extractors read it."""

from __future__ import annotations

import argparse
import os
import sys

from .writers import DEFAULT_URLS, DatabaseDestination, FileDestination, advance

DEFAULT_DIR = os.environ.get("DEMO_DATA_DIR", "var/demo_data")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo-data", description=__doc__)
    parser.add_argument("destination", choices=["files", "mariadb", "postgres"])
    parser.add_argument(
        "--dir", default=DEFAULT_DIR, help="files: the directory the file tap reads (default %(default)s)"
    )
    parser.add_argument("--url", help="databases: SQLAlchemy URL (defaults: " + ", ".join(DEFAULT_URLS.values()) + ")")
    parser.add_argument("--to-day", type=int, help="write every missing day up to this one (default: the next day)")
    args = parser.parse_args(argv)

    dest = FileDestination(args.dir) if args.destination == "files" else DatabaseDestination(args.destination, args.url)
    written = advance(dest, args.to_day)
    where = args.dir if args.destination == "files" else dest.url.render_as_string(hide_password=True)
    if written:
        print(f"demo-data: wrote day(s) {written[0]}..{written[-1]} to {where}")
    else:
        print(f"demo-data: {where} already holds day {dest.last_day()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
