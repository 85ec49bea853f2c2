#!/usr/bin/env python3
"""gen-codes - turns the SMTP code CSVs into C tables (smtp_codes_data.c).

usage: gen-codes --enhanced ENHANCED.csv --replies REPLIES.csv -o OUT.c

ENHANCED.csv holds the IANA "SMTP Enhanced Status Codes" registry (RFC 5248):
its three sub-registries, each introduced by the header row IANA publishes for
it (Class Sub-Codes, Subject Sub-Codes, Enumerated Status Codes). REPLIES.csv
holds reply-code meanings (RFC 5321 §4.2.3 and the extensions). Both are RFC
4180 CSV with '#' comment lines allowed between records.

The output defines the tables declared in dissectors/smtp/codes_data.h, each
sorted for binary search. Field text has its whitespace folded into single
spaces. Any malformed row, unknown header, duplicate code, or field byte other
than printable ASCII (comments may be UTF-8) is an error (exit status 1, nothing written), so a bad edit fails the build.
"""
import argparse
import os
import re
import sys

CLASS_HEADER = ["Code", "Summary", "Description", "Reference", "Submitter", "Change Controller"]
ENUM_HEADER = ["Code", "Sample Text", "Associated basic status code", "Description",
               "Reference", "Submitter", "Change Controller"]
REPLY_HEADER = ["Code", "Command", "Text", "Reference"]

CLASS_RE = re.compile(r"^([245])\.XXX\.YYY$")
SUBJECT_RE = re.compile(r"^X\.([0-9])\.YYY$")
ENUM_RE = re.compile(r"^X\.([0-9]{1,3})\.([0-9]{1,3})$")
REPLY_RE = re.compile(r"^[2-5][0-9][0-9]$")
VERB_RE = re.compile(r"^[A-Z]{0,12}$")


class CsvError(Exception):
    pass


def read_records(path):
    """RFC 4180 records of path as (line number, [fields]); '#' lines and blank
    lines between records are skipped."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CsvError(f"{path}: byte {e.start}: not UTF-8") from None
    text = text.replace("\r\n", "\n")
    records, i, line, n = [], 0, 1, len(text)
    while i < n:
        if text[i] == "\n":
            i, line = i + 1, line + 1
            continue
        if text[i] == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        start, fields, field = line, [], []
        while True:
            if i < n and text[i] == '"':
                i += 1
                while True:
                    if i >= n:
                        raise CsvError(f"{path}:{start}: unterminated quoted field")
                    c = text[i]
                    if c == '"':
                        if i + 1 < n and text[i + 1] == '"':
                            field.append('"')
                            i += 2
                            continue
                        i += 1
                        break
                    if c == "\n":
                        line += 1
                    field.append(c)
                    i += 1
                if i < n and text[i] not in ",\n":
                    raise CsvError(f"{path}:{line}: text after a closing quote")
            else:
                while i < n and text[i] not in ",\n":
                    if text[i] == '"':
                        raise CsvError(f"{path}:{line}: quote inside an unquoted field")
                    field.append(text[i])
                    i += 1
            fields.append("".join(field))
            field = []
            if i < n and text[i] == ",":
                i += 1
                continue
            break
        records.append((start, fields))
    return records


def fold(s):
    """The field as the C table holds it: whitespace runs folded, ends trimmed."""
    return " ".join(s.split())


def c_str(s):
    out = ['"']
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            raise CsvError(f"a field holds a byte other than printable ASCII: {s!r}")
    out.append('"')
    return "".join(out)


def read_enhanced(path):
    """(classes, subjects, enumerated) rows of the registry file."""
    classes, subjects, enums = {}, {}, {}
    header = None
    for line, rec in read_records(path):
        if rec and rec[0] == "Code":
            if rec not in (CLASS_HEADER, ENUM_HEADER):
                raise CsvError(f"{path}:{line}: unknown header row {rec}")
            header = rec
            continue
        if header is None:
            raise CsvError(f"{path}:{line}: data before any header row")
        if len(rec) != len(header):
            raise CsvError(f"{path}:{line}: {len(rec)} fields, the header has {len(header)}")
        f = [fold(x) for x in rec]
        code = f[0]
        if header == CLASS_HEADER:
            m, s = CLASS_RE.match(code), SUBJECT_RE.match(code)
            if m:
                table, key = classes, int(m.group(1))
            elif s:
                table, key = subjects, int(s.group(1))
            else:
                raise CsvError(f"{path}:{line}: {code!r} is neither a class nor a subject code")
            if key in table:
                raise CsvError(f"{path}:{line}: {code} appears twice")
            table[key] = (code, key, f[1], f[2], f[3], f[4], f[5])
        else:
            m = ENUM_RE.match(code)
            if not m:
                raise CsvError(f"{path}:{line}: {code!r} is not an X.subject.detail code")
            key = (int(m.group(1)), int(m.group(2)))
            if key in enums:
                raise CsvError(f"{path}:{line}: {code} appears twice")
            enums[key] = (code, key[0], key[1], f[1], f[2], f[3], f[4], f[5], f[6])
    if not classes or not subjects or not enums:
        raise CsvError(f"{path}: a sub-registry is missing (class, subject or enumerated)")
    return ([classes[k] for k in sorted(classes)], [subjects[k] for k in sorted(subjects)],
            [enums[k] for k in sorted(enums)])


def read_replies(path):
    rows, seen, header = [], set(), None
    for line, rec in read_records(path):
        if header is None:
            if rec != REPLY_HEADER:
                raise CsvError(f"{path}:{line}: expected the header row {REPLY_HEADER}")
            header = rec
            continue
        if len(rec) != len(header):
            raise CsvError(f"{path}:{line}: {len(rec)} fields, the header has {len(header)}")
        code, verb, text, ref = (fold(x) for x in rec)
        if not REPLY_RE.match(code) or not VERB_RE.match(verb) or not text:
            raise CsvError(f"{path}:{line}: bad row {rec}")
        if (code, verb, text) in seen:
            raise CsvError(f"{path}:{line}: row repeated")
        seen.add((code, verb, text))
        rows.append((int(code), verb, text, ref))
    if not rows:
        raise CsvError(f"{path}: no rows")
    rows.sort(key=lambda r: r[0])  # stable: CSV order within a code
    return rows


def emit(out, classes, subjects, enums, replies, sources):
    w = out.append
    w("/* smtp_codes_data.c - SMTP code tables, generated by scripts/build/gen-codes.py from "
      + " and ".join(sources) + ". Do not edit: edit the CSV files. */")
    w('#include "dissectors/smtp/codes_data.h"')
    w("")
    w("/* IANA Class Sub-Codes (RFC 3463 §2, RFC 5248). */")
    w("const struct mx_enhanced_part mx_codes_classes[] = {")
    for r in classes:
        w("    { " + ", ".join([c_str(r[0]), str(r[1])] + [c_str(x) for x in r[2:]]) + " },")
    w("};")
    w("const size_t mx_codes_classes_n = %d;" % len(classes))
    w("")
    w("/* IANA Subject Sub-Codes (RFC 3463 §2, RFC 5248). */")
    w("const struct mx_enhanced_part mx_codes_subjects[] = {")
    for r in subjects:
        w("    { " + ", ".join([c_str(r[0]), str(r[1])] + [c_str(x) for x in r[2:]]) + " },")
    w("};")
    w("const size_t mx_codes_subjects_n = %d;" % len(subjects))
    w("")
    w("/* IANA Enumerated Status Codes (RFC 3463 §3 and later registrations), by subject, detail. */")
    w("const struct mx_enhanced_info mx_codes_enhanced[] = {")
    for r in enums:
        w("    { " + ", ".join([c_str(r[0]), str(r[1]), str(r[2])] + [c_str(x) for x in r[3:]]) + " },")
    w("};")
    w("const size_t mx_codes_enhanced_n = %d;" % len(enums))
    w("")
    w("/* Reply-code meanings (RFC 5321 §4.2.3 and extensions), by code. */")
    w("const struct mx_reply_info mx_codes_replies[] = {")
    for r in replies:
        w("    { %d, %s, %s, %s }," % (r[0], c_str(r[1]), c_str(r[2]), c_str(r[3])))
    w("};")
    w("const size_t mx_codes_replies_n = %d;" % len(replies))
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description="Generate the SMTP code tables (C) from the CSVs.")
    ap.add_argument("--enhanced", required=True, help="the enhanced status code registry CSV")
    ap.add_argument("--replies", required=True, help="the reply code CSV")
    ap.add_argument("-o", "--output", required=True, help="the C file to write")
    a = ap.parse_args()
    try:
        classes, subjects, enums = read_enhanced(a.enhanced)
        replies = read_replies(a.replies)
        text = emit([], classes, subjects, enums, replies,
                    [os.path.basename(a.enhanced), os.path.basename(a.replies)])
    except (CsvError, OSError) as e:
        print(f"gen-codes: {e}", file=sys.stderr)
        return 1
    # Write through a temporary name, so that a failed run leaves no half file.
    tmp = a.output + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, a.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
