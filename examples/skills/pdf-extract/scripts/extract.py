#!/usr/bin/env python3
"""Print the text of a PDF, one block per page (demo helper for the pdf-extract skill)."""

import argparse
import sys


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("pdf")
    parser.add_argument("--pages", help="page range such as 3-7")
    parser.add_argument("--tables", action="store_true")
    args = parser.parse_args()
    try:
        from pypdf import PdfReader
    except ImportError:
        print("install pypdf first: pip install pypdf", file=sys.stderr)
        return 2
    reader = PdfReader(args.pdf)
    first, _, last = (args.pages or f"1-{len(reader.pages)}").partition("-")
    for number in range(int(first), int(last or first) + 1):
        print(f"--- page {number} ---")
        print(reader.pages[number - 1].extract_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
