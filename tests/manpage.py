#!/usr/bin/env python3
"""manpage - the man page, the bash completion and --help cannot fall behind the code.

usage: tests/manpage.py MXRAY

Reads the options of src/main.c's getopt tables (the struct option table and
the short-option string given to getopt_long) and checks that:

- every one of them is an entry of docs/mxray.1's OPTIONS (a .TP tag, written
  \\-\\-name or \\-X in roff), and every entry there, and every \\-\\-name anywhere
  in the page, is an option of main.c;
- scripts/completion/mxray.bash offers exactly those options, and completes
  what the options take (sourced in bash, its function called with COMP_WORDS
  and COMP_CWORD set, in a directory of sample files);
- `MXRAY --help` names each of them;
- groff renders the page without a warning (-ww), when groff is there.

Prints a FAIL line per disagreement, then `N passed, M failed`. Exit status: 0
all passed, 1 failures.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAIN_C = os.path.join(REPO, "src", "main.c")
MANPAGE = os.path.join(REPO, "docs", "mxray.1")
COMPLETION = os.path.join(REPO, "scripts", "completion", "mxray.bash")

passed = failed = 0


def check(ok, what):
    """Counts a check; prints FAIL and what when it did not hold."""
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL " + what, flush=True)


def code_options():
    """The options of main.c: long ones from the struct option table, short
    ones from getopt_long's option string, each as it is typed (--json, -i)."""
    src = open(MAIN_C, encoding="utf-8").read()
    longs = set(re.findall(r'\{\s*"([a-z0-9][a-z0-9-]*)",\s*(?:no|required|optional)_argument', src))
    shorts = set()
    for spec in re.findall(r'getopt_long\([^,]+,[^,]+,\s*"([^"]*)"', src):
        shorts |= set(c for c in spec if c.isalnum())
    if not longs or not shorts:
        print("manpage: found no getopt tables in %s" % MAIN_C, file=sys.stderr)
        sys.exit(1)
    return {"--" + n for n in longs} | {"-" + c for c in shorts}


def roff_options(text):
    """Options named in roff text: \\-\\-name and a lone \\-X (not \\-X... of a longer word)."""
    text = text.replace("\\-", "-")
    found = set(re.findall(r"(?<![\w-])(--[a-z0-9][a-z0-9-]*)", text))
    found |= set(re.findall(r"(?<![\w-])(-[A-Za-z0-9])(?![\w-])", text))
    return found


def manpage_options():
    """The options the man page documents (the tags of OPTIONS' .TP entries), and
    the long options it names anywhere."""
    lines = open(MANPAGE, encoding="utf-8").read().split("\n")
    tags, in_options = set(), False
    for i, line in enumerate(lines):
        if line.startswith(".SH"):
            in_options = line.split(None, 1)[1:] == ["OPTIONS"]
        elif in_options and line.startswith(".TP") and i + 1 < len(lines):
            tags |= roff_options(lines[i + 1])
    anywhere = {o for o in roff_options("\n".join(lines)) if o.startswith("--")}
    return tags, anywhere


def completion_options():
    """The options the completion offers: its _mxray_opts list."""
    text = open(COMPLETION, encoding="utf-8").read()
    m = re.search(r"_mxray_opts='([^']*)'", text)
    return set(m.group(1).split()) if m else set()


def complete(words, cwd):
    """COMPREPLY of _mxray for the command line words (the last one being
    completed), run in cwd; a list."""
    script = ('. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _mxray; '
              'printf "%s\\n" "${COMPREPLY[@]}"')
    out = subprocess.run(["bash", "--norc", "--noprofile", "-c", script, "bash", COMPLETION] + words,
                         cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if out.returncode != 0 or out.stderr:
        return ["(exit %d: %s)" % (out.returncode, out.stderr.strip())]
    return sorted(x for x in out.stdout.split("\n") if x)


def check_completion_behaviour():
    """What the completion offers after the options that take a value, and for files."""
    tmp = tempfile.mkdtemp()
    try:
        for name in ("a.pcap", "b.pcapng", "c.cap", "d.pcap.gz", "e.pcapng.zst", "f.pcap.xz", "notes.txt",
                     "keys.log"):
            open(os.path.join(tmp, name), "w").close()
        os.mkdir(os.path.join(tmp, "ring"))
        captures = ["a.pcap", "b.pcapng", "c.cap", "d.pcap.gz", "e.pcapng.zst", "f.pcap.xz", "ring"]
        try:
            ifaces = sorted(os.listdir("/sys/class/net"))
        except OSError:
            ifaces = []
        cases = [
            (["mxray", ""], ["audit"] + captures, "the first word: audit and captures"),
            (["mxray", "au"], ["audit"], "audit as the first word"),
            (["mxray", "audit", ""], captures, "captures after audit"),
            (["mxray", "-q", "a"], ["a.pcap"], "captures, not other files"),
            (["mxray", "--col"], ["--color"], "a long option"),
            (["mxray", "--no-p"], ["--no-progress", "--no-promisc"], "long options"),
            (["mxray", "--color", ""], ["always", "auto", "never"], "--color WHEN"),
            (["mxray", "--color", "=", "n"], ["never"], "--color=WHEN"),
            (["mxray", "--port", ""], ["imap=", "lmtp=", "pop3=", "smtp="], "--port PROTO="),
            (["mxray", "--port", "smtp", "=", ""], [], "--port smtp=PORT: nothing to offer"),
            (["mxray", "--hashes", "sha256,b"], ["sha256,body"], "--hashes, a comma list"),
            (["mxray", "--hashes", "m"], ["md5", "message"], "--hashes"),
            (["mxray", "--extract", ""], ["ring"], "--extract DIR: directories"),
            (["mxray", "--streams", ""], ["ring"], "--streams DIR: directories"),
            (["mxray", "--write-flows", "r"], ["ring"], "--write-flows DIR: directories"),
            (["mxray", "-i", ""], ifaces, "-i IFACE: /sys/class/net"),
            (["mxray", "--tls-keylog", "k"], ["keys.log"], "--tls-keylog FILE: any file"),
            (["mxray", "--tls-ca", "n"], ["none", "notes.txt"], "--tls-ca FILE or none"),
            (["mxray", "-c", ""], [], "-c COUNT: nothing to offer"),
        ]
        for words, want, what in cases:
            got = complete(words, tmp)
            check(got == sorted(want), "completion, %s: %r gives %r, not %r" % (what, words, got, sorted(want)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(args):
    if len(args) != 1:
        print(__doc__.strip().split("\n")[2], file=sys.stderr)
        return 2
    mxray = args[0]
    code = code_options()
    tags, anywhere = manpage_options()
    for o in sorted(code - tags):
        check(False, "%s (src/main.c) has no entry in docs/mxray.1's OPTIONS" % o)
    for o in sorted((tags | anywhere) - code):
        check(False, "%s is in docs/mxray.1 but not an option of src/main.c" % o)
    check(code <= tags and (tags | anywhere) <= code, "docs/mxray.1 and src/main.c name the same options")

    comp = completion_options()
    for o in sorted(code - comp):
        check(False, "%s (src/main.c) is not offered by the bash completion" % o)
    for o in sorted(comp - code):
        check(False, "%s is offered by the bash completion but is not an option of src/main.c" % o)
    check(comp == code, "the bash completion offers the options of src/main.c")
    check_completion_behaviour()

    out = subprocess.run([mxray, "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    check(out.returncode == 0, "mxray --help exits %d" % out.returncode)
    for o in sorted(code):
        check(re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(o), out.stdout) is not None,
              "mxray --help does not name %s" % o)

    if shutil.which("groff"):
        r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", MANPAGE], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
        check(r.returncode == 0 and not r.stderr.strip(),
              "groff -man -ww warns on docs/mxray.1: %s" % r.stderr.strip())
    else:
        print("manpage: no groff (scripts/setup.sh installs groff-base): the page's rendering is not checked",
              flush=True)

    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
