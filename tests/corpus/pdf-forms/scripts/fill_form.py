#!/usr/bin/env python3
"""List or fill the AcroForm fields of a PDF."""

import argparse
import json
import sys


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fields")
    f.add_argument("pdf")
    g = sub.add_parser("fill")
    g.add_argument("pdf")
    g.add_argument("values")
    g.add_argument("--out", required=True)
    g.add_argument("--flatten", action="store_true")
    args = parser.parse_args()

    from pypdf import PdfReader, PdfWriter

    reader = PdfReader(args.pdf)
    if args.cmd == "fields":
        for name, field in (reader.get_fields() or {}).items():
            print(f"{name}\t{field.get('/FT')}\t{field.get('/V')}")
        return 0
    with open(args.values, encoding="utf-8") as fh:
        values = json.load(fh)
    writer = PdfWriter()
    writer.append(reader)
    for page in writer.pages:
        writer.update_page_form_field_values(page, values, auto_regenerate=False)
    if args.flatten:
        writer.remove_annotations(subtypes="/Widget")
    with open(args.out, "wb") as fh:
        writer.write(fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
