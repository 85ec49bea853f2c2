#!/usr/bin/env python3
"""corpus_check - runs mxray over every capture of ../shared/corpus and checks its output.

usage: tests/oracle/corpus_check.py [--mxray PATH] [--valgrind] [--html] [--jobs N] [--workers N] [--batch N] [FILE...]

For each capture: mxray must exit 0 (clean) or 3 (damaged input); every NDJSON
line must be valid JSON (and therefore valid UTF-8); the last record must be the
summary; every flow_start must have its flow record; every record must
validate against docs/schema.json (python3-jsonschema). With --valgrind, mxray runs
under memcheck (with tests/valgrind.supp: glibc-internal false positives only)
and any error or definite/indirect leak fails the capture. With --html, the same
run also writes the HTML report (so memcheck covers that reporter too), which
must be one whole document. --batch N gives mxray N captures at a time, read
as one capture (its FILE... form): under memcheck, starting mxray (nDPI's
set-up above all) costs more than reading a capture, so --valgrind defaults
to as many batches as twice the jobs; otherwise 1.
Exits 77 (skip) when ../shared/corpus is absent.
"""
import concurrent.futures as cf
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile

if __package__ in (None, ""):   # run as a file: tests/ holds the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from oracle import common  # noqa: E402

ROOT, CORPUS = common.REPO, common.CORPUS


def captures():
    return [os.path.join(CORPUS, p) for p in common.manifest_captures()]


def schema_validator():
    try:
        import jsonschema
    except ImportError:
        return None
    with open(os.path.join(ROOT, "docs", "schema.json"), encoding="utf-8") as f:
        schema = json.load(f)
    # Its references are all within the document ("#/$defs/..."); its $id
    # is a relative URI, which Debian 12's python3-jsonschema (4.10) joins
    # to itself again in each subschema ("mxray/mxray/schema.json") and then
    # cannot resolve: validate without it.
    schema.pop("$id", None)
    return jsonschema.Draft202012Validator(schema)


VALIDATOR = schema_validator()


def check(mxray, paths, valgrind, html=False, workers=None):
    tmps = []
    report = None
    try:
        srcs = []
        for path in paths:
            if path.endswith(".gz"):
                fd, tmp = tempfile.mkstemp(suffix=".pcap")
                tmps.append(tmp)
                with os.fdopen(fd, "wb") as out, gzip.open(path, "rb") as inp:
                    shutil.copyfileobj(inp, out)
                srcs.append(tmp)
            else:
                srcs.append(path)
        cmd = [mxray, "-q", "--json", "-"] + srcs
        if workers is not None:
            cmd[1:1] = ["-j", str(workers)]
        if html:
            fd, report = tempfile.mkstemp(suffix=".html")
            os.close(fd)
            cmd[1:1] = ["--html", report]
        if valgrind:
            cmd = ["valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
                   "--errors-for-leak-kinds=definite,indirect",
                   "--suppressions=" + os.path.join(ROOT, "tests", "valgrind.supp")] + cmd
        p = subprocess.run(cmd, capture_output=True, timeout=600)
        if p.returncode not in (0, 3):
            return f"exit {p.returncode}: {p.stderr.decode('utf-8', 'replace')[-2000:]}"
        recs = []
        for i, line in enumerate(p.stdout.split(b"\n")[:-1]):
            try:
                recs.append(json.loads(line.decode("utf-8", "strict")))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                return f"line {i + 1} is not valid JSON/UTF-8: {e}"
        if VALIDATOR:
            for i, r in enumerate(recs):
                errs = list(VALIDATOR.iter_errors(r))
                if errs:
                    return f"record {i + 1} ({r.get('type')}) does not match docs/schema.json: {errs[0].message}"
        if not recs or recs[-1].get("type") != "summary":
            return "the last record is not the summary"
        starts = {r["flow"] for r in recs if r["type"] == "flow_start"}
        ends = {r["flow"] for r in recs if r["type"] == "flow"}
        if starts != ends:
            return f"flows started but not reported: {sorted(starts ^ ends)[:10]}"
        if report:
            with open(report, encoding="utf-8") as f:
                doc = f.read()
            if not doc.startswith("<!DOCTYPE html>") or not doc.rstrip().endswith("</html>"):
                return "the HTML report is not one whole document"
        return None
    finally:
        for tmp in tmps:
            os.unlink(tmp)
        if report:
            os.unlink(report)


def main():
    ap = common.parser(__doc__)
    ap.add_argument("--valgrind", action="store_true")
    ap.add_argument("--workers", type=int, help="mxray's -j (default: mxray's own)")
    ap.add_argument("--html", action="store_true")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--batch", type=int, help="captures per mxray run (default: see above)")
    ap.add_argument("files", nargs="*")
    a = ap.parse_args()
    if not a.files and not os.path.isdir(CORPUS):
        print(f"corpus-check: skipped: {CORPUS} is absent")
        return 77
    if a.valgrind and not shutil.which("valgrind"):
        print("corpus-check: skipped: valgrind is not installed")
        return 77
    status = common.not_built(a.mxray)
    if status:
        return status
    if not VALIDATOR:
        print("corpus-check: python3-jsonschema is missing: records are not checked against docs/schema.json")
    files = a.files or captures()
    batch = a.batch or (-(-len(files) // (2 * a.jobs)) if a.valgrind else 1)
    groups = [files[i:i + batch] for i in range(0, len(files), batch)]
    passed = failed = 0
    with cf.ThreadPoolExecutor(a.jobs) as ex:
        for group, err in zip(groups, ex.map(lambda g: check(a.mxray, g, a.valgrind, a.html, a.workers), groups)):
            rel = " ".join(os.path.relpath(p, CORPUS) if p.startswith(CORPUS) else p for p in group)
            if err:
                failed += len(group)
                print(f"FAIL {rel}: {err}")
            else:
                passed += len(group)
    return common.summary(passed, failed, f" (mxray read {batch} at a time)" if batch > 1 else "")


if __name__ == "__main__":
    sys.exit(main())
