#!/usr/bin/env python3
"""index_template - docs/schema.json, its index template and its Splunk stanza agree (issue 29).

usage: tests/index_template.py [-v] [--mxray PATH]

- One type per key: every field path (dotted, arrays transparent) has one JSON
  type in all record types of docs/schema.json, and in every record of
  tests/golden/**/*.ndjson; null beside one type is fine, an integer beside a
  number is a conflict (a long mapping would cut the fractions), and so is an
  array of T beside a T.  Each conflict is listed with its types and the
  record types that have each.  With --mxray, the records mxray writes for
  the public corpus's mail captures (../shared/corpus, when it is there) are
  checked as the golden ones are, here and below: captures taken by others.
- No key has a dot or begins with an underscore (Elasticsearch reads a dot
  as a path, and reserves _id, _source, ...).
- The index template (docs/elasticsearch/mxray-template.json) is what
  scripts/index-template.py writes from the schema now (so neither a hand edit
  nor a schema change without regenerating it passes), is a composable
  template (PUT _index_template/mxray) with index_patterns mxray-* and
  dynamic false or strict, maps every path of the schema and no path the
  schema lacks (the ECS aliases aside), with an Elasticsearch type that
  agrees with the JSON type; every alias points to a concrete field that is
  not an object, nor another alias, nor in a nested object; no ECS name of
  scripts/index-template.py's table has lost its field (a pending one aside;
  one that mxray's own fields block is a NOTE); keywords without
  ignore_above take only enums; the fields fit total_fields.limit.
- Every value of every record (golden, and the corpus's) fits its mapping: an ip field holds an
  IPv4 or IPv6 address, a date one a time its format reads (date_nanos:
  1970-2262), a long an integer in range, a double a number, a boolean a
  boolean, a keyword or text a string, an object an object; no path is
  unmapped.
- docs/splunk/props.conf parses, has the [mxray] stanza with its line
  breaking, TRUNCATE of at least MX_EVENT_MAX_BYTES and time settings (which
  read the ts of every golden record that has one, and nothing in those
  that have none), and every field its FIELDALIAS and EVAL lines read is a
  schema path, with "{}" exactly after the arrays.
- docs/indexing.md names every ECS alias of the template.

Prints a FAIL line per problem (a NOTE line for what is not one), then
`N passed, M failed`; exits 1 on a failure.
"""
import collections
import configparser
import datetime
import difflib
import glob
import importlib.util
import itertools
import ipaddress
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle import common  # noqa: E402

REPO = common.REPO
SCHEMA = os.path.join(REPO, "docs", "schema.json")
TEMPLATE = os.path.join(REPO, "docs", "elasticsearch", "mxray-template.json")
GENERATOR = os.path.join(REPO, "scripts", "index-template.py")
PROPS = os.path.join(REPO, "docs", "splunk", "props.conf")
INDEXING = os.path.join(REPO, "docs", "indexing.md")
GOLDEN = os.path.join(REPO, "tests", "golden")
EVENT_C = os.path.join(REPO, "src", "event", "event.c")

VERBOSE = "-v" in sys.argv[1:]
MXRAY = sys.argv[sys.argv.index("--mxray") + 1] if "--mxray" in sys.argv[1:-1] else None

# The Elasticsearch types a JSON type may be mapped to.
AGREES = {
    "string": {"keyword", "text", "ip", "date", "date_nanos", "wildcard", "constant_keyword"},
    "integer": {"long", "unsigned_long", "integer", "short", "byte"},
    "number": {"double", "float", "half_float", "scaled_float"},
    "boolean": {"boolean"},
}
TEMPLATE_KEYS = {"index_patterns", "template", "composed_of", "priority", "version", "_meta",
                 "data_stream", "allow_auto_create", "ignore_missing_component_templates",
                 "deprecated"}
TEMPLATE_INNER = {"settings", "mappings", "aliases", "lifecycle"}
MAX_IGNORE_ABOVE = 8191     # 4 UTF-8 bytes a character: under Lucene's 32766-byte term
NANOS_MIN = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
NANOS_MAX = datetime.datetime(2262, 4, 11, 23, 47, 16, 854775, tzinfo=datetime.timezone.utc)
# strict_date_optional_time(_nanos): a date, optionally a time (fractions up to 9
# digits), optionally a zone.
ES_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
                     r"(Z|[+-]\d{2}(?::?\d{2})?)?)?$")
DATE_FORMATS = {"strict_date_optional_time", "strict_date_optional_time_nanos",
                "date_optional_time", "strict_date_time", "strict_date_time_no_millis"}


class Result:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, what, problems=()):
        """One check: PASS, or FAIL with its problems (at most 40 shown)."""
        problems = list(problems)
        if ok and not problems:
            self.passed += 1
            if VERBOSE:
                print("PASS %s" % what)
            return True
        self.failed += 1
        print("FAIL %s" % what)
        for p in problems[:40]:
            print("    %s" % p)
        if len(problems) > 40:
            print("    ... and %d more" % (len(problems) - 40))
        return False


# ---------------------------------------------------------------- the schema

def load_generator():
    """scripts/index-template.py as a module: the template it would write, and its tables."""
    spec = importlib.util.spec_from_file_location("index_template_gen", GENERATOR)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


gen = load_generator()
json_type = gen.json_type  # a JSON value's type, as the schema names it


class SchemaPaths:
    """Every path of the schema with its types per record type.

    A type is written as the key's value is: "string", "object",
    "array<integer>", "array<array<string>>" (arrays at that key only: the
    items of an array of objects give their keys plain types).  A definition
    met a third time on one path is not followed ("object", cut), as
    scripts/index-template.py does."""

    RECURSION = 2

    def __init__(self, schema):
        self.defs = schema.get("$defs", {})
        # path tuple -> type -> set of record types
        self.types = collections.defaultdict(lambda: collections.defaultdict(set))
        self.bounded = {}       # path -> every string is from an enum or const
        self.maps = set()       # paths whose keys are names (additionalProperties)
        self.cut = set()
        self.records = []
        for alt in schema.get("oneOf", []) + schema.get("anyOf", []):
            node, stack = self.resolve(alt, ())
            record = node.get("properties", {}).get("type", {}).get("const", "?")
            self.records.append(record)
            self.walk(node, (), record, "", stack)

    def resolve(self, node, stack):
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            assert ref.startswith("#/$defs/"), ref
            name = ref[len("#/$defs/"):]
            merged = dict(self.defs[name])
            merged.update({k: v for k, v in node.items() if k != "$ref"})
            node, stack = merged, stack + (name,)
        return node, stack

    def walk(self, node, path, record, arr, stack):
        node, stack = self.resolve(node, stack)
        if not isinstance(node, dict):
            return
        if any(stack.count(d) > self.RECURSION for d in stack):
            self.types[path][arr + "object" + ">" * arr.count("<")].add(record)
            self.cut.add(path)
            return
        for key in ("anyOf", "oneOf", "allOf"):
            for alt in node.get(key, []):
                self.walk(alt, path, record, arr, stack)
        types = gen.declared_types(node)
        ap = node.get("additionalProperties")
        if "properties" in node or isinstance(ap, dict) or "patternProperties" in node:
            types.add("object")
        if "items" in node or "prefixItems" in node:
            types.add("array")
        if "string" in types and path:
            enum = "const" in node or "enum" in node
            self.bounded[path] = self.bounded.get(path, True) and enum
        close = ">" * arr.count("<")
        for ty in types - {"array"}:
            if path:
                self.types[path][arr + ty + close].add(record)
        if "array" in types:
            items = node.get("items")
            if isinstance(items, dict):
                self.walk(items, path, record, arr + "array<", stack)
            for it in node.get("prefixItems", []):
                self.walk(it, path, record, arr + "array<", stack)
        for k, v in node.get("properties", {}).items():
            self.walk(v, path + (k,), record, "", stack)
        values = [ap] if isinstance(ap, dict) else []
        values += list(node.get("patternProperties", {}).values())
        for v in values:
            self.maps.add(path)
            self.walk(v, path + ("*",), record, "", stack)

    def base_types(self, path):
        """The JSON types of a path, arrays taken off, null left out."""
        out = set()
        for ty in self.types.get(path, {}):
            base = re.sub(r"^(array<)+", "", ty).rstrip(">")
            if base != "null":
                out.add(base)
        return out

    def is_array(self, path):
        return any(ty.startswith("array<") for ty in self.types.get(path, {}))


def conflicts(types):
    """{path: {type: records}} of the paths with more than one type beside null."""
    out = {}
    for path, by_type in types.items():
        core = {t for t in by_type if t != "null"}
        if len(core) > 1:
            out[path] = by_type
    return out


def show_conflicts(found):
    lines = []
    for path in sorted(found):
        parts = []
        for ty in sorted(found[path]):
            recs = sorted(found[path][ty])
            shown = ", ".join(recs[:6]) + (", +%d" % (len(recs) - 6) if len(recs) > 6 else "")
            parts.append("%s in %s" % (ty, shown))
        lines.append("%s: %s" % (".".join(path), "; ".join(parts)))
    return lines


# ---------------------------------------------------------------- goldens

def golden_records():
    for name in sorted(glob.glob(os.path.join(GOLDEN, "**", "*.ndjson"), recursive=True)):
        with open(name, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if line.strip():
                    yield os.path.relpath(name, REPO), n, line, json.loads(line)


def corpus_records(mxray):
    """The records mxray writes for each mail capture of ../shared/corpus
    (MANIFEST.tsv's role "mail"), or nothing with a note when it is absent."""
    if not os.path.isfile(os.path.join(common.CORPUS, "MANIFEST.tsv")):
        print("NOTE %s is absent: only tests/golden's records are checked" % common.CORPUS)
        return
    for row in common.manifest():
        if row.get("role", "").strip() != "mail" or not row.get("path", "").strip():
            continue
        out = common.run_mxray(mxray, "-q", "-j0", "--json", "-", os.path.join(common.CORPUS, row["path"].strip()))
        for n, line in enumerate(out.decode("utf-8").splitlines(), 1):
            if line.strip():
                yield "corpus/" + row["path"].strip(), n, line, json.loads(line)


def value_types(v):
    """The types of a value as SchemaPaths writes them: {"string"},
    {"array<integer>"}; an empty array says nothing."""
    if isinstance(v, list):
        inner = set()
        for x in v:
            if x is not None:
                inner |= value_types(x)
        return {"array<%s>" % t for t in inner}
    return {json_type(v)}


def golden_types(v, path, record, out):
    """Types of the values of a record, by path."""
    if isinstance(v, dict):
        for k, x in v.items():
            sub = path + (k,)
            for t in value_types(x):
                out[sub][t].add(record)
            golden_types(x, sub, record, out)
    elif isinstance(v, list):
        for x in v:
            golden_types(x, path, record, out)


# ---------------------------------------------------------------- the template

class Mapping:
    """The template's mappings, flattened."""

    def __init__(self, mappings):
        self.fields = {}        # path tuple -> mapping of a concrete field (not an object)
        self.objects = {}       # path tuple -> object mapping
        self.aliases = {}       # path tuple -> alias mapping
        self.nested = set()
        self.multi = 0
        self.dynamic_templates = []
        for entry in mappings.get("dynamic_templates", []):
            for name, dt in entry.items():
                self.dynamic_templates.append((name, dt))
        self.add(mappings.get("properties", {}), ())

    def add(self, props, prefix):
        for name, m in props.items():
            path = prefix + (name,)
            t = m.get("type", "object" if "properties" in m else None)
            if t == "alias":
                self.aliases[path] = m
            elif t in ("object", "nested"):
                self.objects[path] = m
                if t == "nested":
                    self.nested.add(path)
                self.add(m.get("properties", {}), path)
            else:
                self.fields[path] = m
                self.multi += len(m.get("fields", {}))

    def dynamic_for(self, path):
        """The mapping a dynamic template gives path, or None."""
        dotted = ".".join(path)
        for _name, dt in self.dynamic_templates:
            pm = dt.get("path_match")
            if pm and re.fullmatch(re.escape(pm).replace(r"\*", ".*"), dotted):
                return dt.get("mapping")
        return None

    def leaf(self, path):
        """The mapping of a path's values: concrete, dynamic, or None."""
        if path in self.fields:
            return self.fields[path]
        return self.dynamic_for(path)

    def disabled(self, path):
        """path is in an object with enabled: false."""
        return any(self.objects.get(path[:i], {}).get("enabled") is False
                   for i in range(1, len(path) + 1))


def es_date(s, nanos):
    m = ES_DATE.match(s)
    if not m:
        return "not a date its format reads"
    y, mo, d, h, mi, sec, frac, zone = m.groups()
    try:
        dt = datetime.datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(sec or 0),
                               int((frac or "0")[:6].ljust(6, "0")))
    except ValueError as e:
        return "not a date (%s)" % e
    if zone is None:
        return "no zone: read as UTC, but mxray's times say Z"
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        offset = datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0))
        dt = dt - sign * offset
    dt = dt.replace(tzinfo=datetime.timezone.utc)
    if nanos and not NANOS_MIN <= dt <= NANOS_MAX:
        return "outside date_nanos' range (1970-2262)"
    return None


def fits(value, m):
    """None when value fits the mapping m, else why not."""
    t = m.get("type")
    if t == "ip":
        if not isinstance(value, str):
            return "an ip field holds %s" % json_type(value)
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return "not an IP address"
        return None
    if t in ("date", "date_nanos"):
        if not isinstance(value, str):
            return "a date holds %s" % json_type(value)
        formats = set(m.get("format", "strict_date_optional_time").split("||"))
        if not formats & DATE_FORMATS:
            return "format %s not known to this test" % m.get("format")
        return es_date(value, t == "date_nanos")
    if t in ("long", "integer", "short", "byte", "unsigned_long"):
        if not isinstance(value, int) or isinstance(value, bool):
            return "a %s holds %s" % (t, json_type(value))
        lo, hi = {"long": (-2**63, 2**63 - 1), "integer": (-2**31, 2**31 - 1),
                  "short": (-2**15, 2**15 - 1), "byte": (-128, 127),
                  "unsigned_long": (0, 2**64 - 1)}[t]
        return None if lo <= value <= hi else "out of the %s range" % t
    if t in ("double", "float", "half_float", "scaled_float"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok else "a %s holds %s" % (t, json_type(value))
    if t == "boolean":
        return None if isinstance(value, bool) else "a boolean holds %s" % json_type(value)
    if t in ("keyword", "text", "wildcard"):
        return None if isinstance(value, str) else "a %s holds %s" % (t, json_type(value))
    return "mapping type %s not known to this test" % t


def check_values(rec_path, value, mapping, where, problems, counts):
    """Walks a record's values against the mapping."""
    if value is None:
        return
    if isinstance(value, list):
        for v in value:
            check_values(rec_path, v, mapping, where, problems, counts)
        return
    if rec_path and mapping.disabled(rec_path):
        return
    dotted = ".".join(rec_path)
    if isinstance(value, dict):
        if rec_path and rec_path not in mapping.objects:
            problems.append("%s: %s is an object, mapped as %s" % (
                where, dotted, (mapping.leaf(rec_path) or {}).get("type", "nothing")))
            return
        for k, v in value.items():
            check_values(rec_path + (k,), v, mapping, where, problems, counts)
        return
    m = mapping.leaf(rec_path)
    if m is None:
        if rec_path in mapping.objects:
            problems.append("%s: %s holds %s, mapped as an object (the record would be rejected)"
                            % (where, dotted, json_type(value)))
        else:
            problems.append("%s: %s is not mapped" % (where, dotted))
        return
    why = fits(value, m)
    counts[0] += 1
    if why:
        problems.append("%s: %s = %s: %s" % (where, dotted, json.dumps(value)[:60], why))


# ---------------------------------------------------------------- Splunk

def splunk_names(value):
    """The field names of a FIELDALIAS value: [(source, dest)], quoted names allowed."""
    tokens = re.findall(r'"[^"]*"|\S+', value)
    tokens = [t[1:-1] if t.startswith('"') else t for t in tokens]
    pairs = []
    for i in range(0, len(tokens) - 2, 3):
        if tokens[i + 1] not in ("AS", "ASNEW"):
            return None
        pairs.append((tokens[i], tokens[i + 2]))
    if len(tokens) % 3:
        return None
    return pairs


def splunk_path(name, sp):
    """Why a Splunk JSON field name is not a schema path ("{}" after exactly
    the arrays), or None."""
    segs = name.split(".")
    path = ()
    for seg in segs:
        arr = seg.endswith("{}")
        key = seg[:-2] if arr else seg
        path += (key,)
        if path not in sp.types:
            return "%s is not in the schema" % ".".join(path)
        if arr != sp.is_array(path):
            return "%s is %san array: %s" % (".".join(path), "" if sp.is_array(path) else "not ",
                                             "write %s{}" % key if not arr else "drop the {}")
    return None


def splunk_time(fmt):
    """A Splunk TIME_FORMAT as Python's strptime reads it (%6N: microseconds)."""
    return fmt.replace("%6N", "%f").replace("%3N", "%f")


# ---------------------------------------------------------------- main

def main():
    common.start()
    r = Result()
    with open(SCHEMA, encoding="utf-8") as fh:
        schema = json.load(fh)
    try:
        import jsonschema
        jsonschema.Draft202012Validator.check_schema(schema)
        r.check(True, "docs/schema.json is a valid JSON Schema 2020-12")
    except ImportError:
        pass
    except Exception as e:  # jsonschema.SchemaError
        r.check(False, "docs/schema.json is a valid JSON Schema 2020-12", [str(e)[:300]])
    sp = SchemaPaths(schema)
    # Elasticsearch reads a dot in a key as a path and reserves names that
    # begin with an underscore (_id, _source, ...).
    bad = sorted(".".join(p) for p in sp.types
                 if p[-1] != "*" and ("." in p[-1] or p[-1].startswith("_") or not p[-1]))
    r.check(not bad, "no key of the schema has a dot or a leading underscore", bad)

    # One type per key, in the schema and in the goldens.
    found = conflicts(sp.types)
    r.check(not found, "one type per key in docs/schema.json (%d paths, %d record types)"
            % (len(sp.types), len(sp.records)), show_conflicts(found))
    gtypes = collections.defaultdict(lambda: collections.defaultdict(set))
    records = []
    for where, n, line, rec in itertools.chain(golden_records(), corpus_records(MXRAY) if MXRAY else ()):
        records.append((where, n, line, rec))
        golden_types(rec, (), rec.get("type", "?"), gtypes)
    found = conflicts(gtypes)
    r.check(not found, "one type per key in tests/golden%s (%d records, %d paths)"
            % (" and the corpus's output" if MXRAY else "", len(records), len(gtypes)), show_conflicts(found))

    # The template is the generator's output, and a composable template.
    with open(TEMPLATE, encoding="utf-8") as fh:
        text = fh.read()
    try:
        tpl = json.loads(text)
    except ValueError as e:
        r.check(False, "the template is JSON", [str(e)])
        return common.summary(r.passed, r.failed)
    want = gen.render(gen.build(schema))
    diff = [] if text == want else ["run scripts/index-template.py; it would change:"] + [
        line.rstrip("\n") for line in difflib.unified_diff(
            text.splitlines(True), want.splitlines(True), "committed", "generated", n=0)][2:12]
    r.check(not diff, "the template is what scripts/index-template.py writes from the schema now",
            diff)
    problems = []
    if set(tpl) - TEMPLATE_KEYS:
        problems.append("unknown top-level keys %s" % sorted(set(tpl) - TEMPLATE_KEYS))
    if tpl.get("index_patterns") != ["mxray-*"]:
        problems.append("index_patterns is %r" % tpl.get("index_patterns"))
    inner = tpl.get("template", {})
    if set(inner) - TEMPLATE_INNER:
        problems.append("unknown template keys %s" % sorted(set(inner) - TEMPLATE_INNER))
    mappings = inner.get("mappings", {})
    if mappings.get("dynamic") not in (False, "false", "strict"):
        problems.append("mappings.dynamic is %r, not false or strict" % mappings.get("dynamic"))
    r.check(not problems, "the template is a composable index template for mxray-*", problems)
    mp = Mapping(mappings)

    # Coverage and agreement.
    missing, agree = [], []
    for path in sorted(sp.types):
        dotted = ".".join(path)
        base = sp.base_types(path)
        if path[-1] == "*":
            m = mp.dynamic_for(path[:-1] + ("x",))
            parent = mp.objects.get(path[:-1], {})
            if m is None or parent.get("dynamic") not in (True, "true"):
                missing.append("%s: the values of a name->value object need a dynamic object"
                               " and a dynamic template" % dotted)
                continue
        elif path in sp.cut:
            if path not in mp.objects:
                missing.append("%s (a self-reference cut) is not mapped as an object" % dotted)
            continue
        elif "object" in base:
            if path not in mp.objects:
                missing.append("%s is an object, mapped as %s" % (
                    dotted, mp.fields.get(path, {}).get("type", "nothing")))
            continue
        else:
            m = mp.fields.get(path)
            if m is None:
                missing.append("%s (%s) is not mapped" % (dotted, "/".join(sorted(base))))
                continue
        t = m.get("type")
        conflicted = len(base) > 1
        for jt in base:
            ok = t in AGREES.get(jt, set()) or (conflicted and t == "keyword")
            if not ok:
                agree.append("%s: JSON %s mapped as %s" % (dotted, jt, t))
    r.check(not missing, "every path of the schema is mapped (%d paths)" % len(sp.types), missing)
    r.check(not agree, "every mapping agrees with its JSON type", agree)

    schema_paths = set(sp.types)
    alias_parents = {a[:i] for a in mp.aliases for i in range(1, len(a))}
    extra = []
    for path in sorted(set(mp.fields) | set(mp.objects)):
        if path in schema_paths:
            continue
        if path in mp.objects and path in alias_parents and not any(
                f[:len(path)] == path for f in mp.fields):
            continue    # an object that only holds ECS aliases (email, file, ...)
        extra.append(".".join(path))
    r.check(not extra, "no mapping for a path the schema lacks", extra)

    # Dates: capture times are date_nanos or date, other date-times date.
    problems = []
    for path, m in mp.fields.items():
        if m.get("type") in ("date", "date_nanos"):
            fmts = set(m.get("format", "strict_date_optional_time").split("||"))
            if not fmts & DATE_FORMATS:
                problems.append("%s: format %s" % (".".join(path), m.get("format")))
            if m.get("type") == "date_nanos" and "nanos" not in m.get("format", "nanos"):
                problems.append("%s: date_nanos whose format keeps only milliseconds"
                                % ".".join(path))
    r.check(not problems, "date fields read RFC 3339 times with their fractions", problems)

    # Keywords: ignore_above where values can be long.
    problems = []
    for path, m in mp.fields.items():
        subs = [(path, m)] + [(path + (k,), s) for k, s in m.get("fields", {}).items()]
        for p, s in subs:
            if s.get("type") != "keyword":
                continue
            ia = s.get("ignore_above")
            if ia is None and not sp.bounded.get(p, False):
                problems.append("%s: a keyword of unbounded strings without ignore_above"
                                % ".".join(p))
            if ia is not None and not 0 < ia <= MAX_IGNORE_ABOVE:
                problems.append("%s: ignore_above %s (at most %d)" % (".".join(p), ia,
                                                                      MAX_IGNORE_ABOVE))
    r.check(not problems, "keywords of free strings have ignore_above <= %d" % MAX_IGNORE_ABOVE,
            problems)

    # Aliases.
    problems = []
    for path, m in sorted(mp.aliases.items()):
        target = tuple(m.get("path", "").split("."))
        name = ".".join(path)
        if target in mp.aliases:
            problems.append("%s -> %s: an alias of an alias" % (name, m["path"]))
        elif target in mp.objects:
            problems.append("%s -> %s: an object" % (name, m["path"]))
        elif target not in mp.fields:
            problems.append("%s -> %s: no such field" % (name, m["path"]))
        if path in mp.fields or path in mp.objects:
            problems.append("%s is also a field" % name)
        for n in mp.nested:
            if (target[:len(n)] == n) != (path[:len(n)] == n):
                problems.append("%s -> %s: crosses the nested object %s" % (
                    name, m["path"], ".".join(n)))
    r.check(not problems, "every alias points to a concrete field (%d aliases)" % len(mp.aliases),
            problems)

    meta_not = tpl.get("_meta", {}).get("ecs_not_mapped", {})
    problems = []
    for ecs, target, pending, _also in gen.ECS:
        epath = tuple(ecs.split("."))
        if epath in mp.aliases:
            continue
        tpath = tuple(target.split("."))
        if tpath not in sp.types:
            if pending:
                print("NOTE ECS %s: %s is not in the schema yet (pending)" % (ecs, target))
            else:
                problems.append("ECS %s: its field %s is not in the schema any more: update"
                                " scripts/index-template.py's table" % (ecs, target))
            continue
        print("NOTE ECS %s -> %s not mapped: %s" % (ecs, target, meta_not.get(ecs, "?")))
    r.check(not problems, "every ECS name of the table still has its field", problems)

    limit = int(inner.get("settings", {}).get("index", {}).get("mapping", {})
                .get("total_fields", {}).get("limit", 1000))
    total = len(mp.fields) + len(mp.objects) + len(mp.aliases) + mp.multi
    margin = 200    # dynamic fields: the anomaly names
    r.check(total + margin <= limit, "%d fields, objects and aliases (+%d) within"
            " total_fields.limit %d" % (total, margin, limit),
            [] if total + margin <= limit else ["raise index.mapping.total_fields.limit"])
    defaults = inner.get("settings", {}).get("index", {}).get("query", {}).get("default_field", [])
    problems = ["%s is not a text or keyword field" % d for d in defaults
                if mp.fields.get(tuple(d.split(".")), {}).get("type") not in ("text", "keyword")]
    r.check(not problems, "index.query.default_field names text and keyword fields", problems)

    # Values fit.
    problems, counts = [], [0]
    for where, n, _line, rec in records:
        check_values((), rec, mp, "%s:%d" % (where, n), problems, counts)
    r.check(not problems, "every value of the records fits its mapping (%d values of %d records)"
            % (counts[0], len(records)), problems)

    # Splunk.
    check_splunk(r, sp, records)

    # The doc.
    try:
        with open(INDEXING, encoding="utf-8") as fh:
            doc = fh.read()
        absent = [".".join(a) for a in sorted(mp.aliases) if "`%s`" % ".".join(a) not in doc]
        r.check(not absent, "docs/indexing.md names every ECS alias", absent)
    except FileNotFoundError:
        r.check(False, "docs/indexing.md exists")
    return common.summary(r.passed, r.failed)


def check_splunk(r, sp, records):
    cp = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",),
                                   comment_prefixes=("#",), inline_comment_prefixes=None)
    cp.optionxform = str
    try:
        cp.read(PROPS, encoding="utf-8")
    except configparser.Error as e:
        r.check(False, "docs/splunk/props.conf parses", [str(e)])
        return
    if not r.check(cp.has_section("mxray"), "docs/splunk/props.conf has the [mxray] stanza"):
        return
    st = cp["mxray"]
    problems = []
    kv = st.get("KV_MODE", "").lower()
    ix = st.get("INDEXED_EXTRACTIONS", "").lower()
    if (kv == "json") == (ix == "json"):
        problems.append("one of KV_MODE = json and INDEXED_EXTRACTIONS = json, not both"
                        " (KV_MODE %r, INDEXED_EXTRACTIONS %r)" % (kv, ix))
    if st.get("SHOULD_LINEMERGE", "").lower() != "false":
        problems.append("SHOULD_LINEMERGE is not false")
    if st.get("LINE_BREAKER") != "([\\r\\n]+)":
        problems.append("LINE_BREAKER is %r" % st.get("LINE_BREAKER"))
    cap = None
    try:
        with open(EVENT_C, encoding="utf-8") as fh:
            m = re.search(r"#define MX_EVENT_MAX_BYTES \((\d+)u << (\d+)\)", fh.read())
        if m:
            cap = int(m.group(1)) << int(m.group(2))
    except FileNotFoundError:
        pass
    try:
        truncate = int(st.get("TRUNCATE", "10000"))
    except ValueError:
        truncate = -1
    if cap is None:
        problems.append("MX_EVENT_MAX_BYTES not found in src/event/event.c")
    elif truncate != 0 and truncate < cap:
        problems.append("TRUNCATE %d is under MX_EVENT_MAX_BYTES (%d)" % (truncate, cap))
    r.check(not problems, "[mxray]: JSON fields, one event a line, TRUNCATE >= %s bytes" % cap,
            problems)

    # Time: TIME_PREFIX finds the top-level ts of every record that has one and
    # nothing in the others; TIME_FORMAT reads it within the look-ahead.
    problems = []
    prefix = st.get("TIME_PREFIX")
    fmt = st.get("TIME_FORMAT")
    look = int(st.get("MAX_TIMESTAMP_LOOKAHEAD", "128"))
    if not prefix or not fmt:
        problems.append("TIME_PREFIX or TIME_FORMAT missing")
    else:
        pre = re.compile(prefix)
        pyfmt = splunk_time(fmt)
        checked = 0
        for where, n, line, rec in records:
            m = pre.search(line)
            ts = rec.get("ts")
            if ts is None:
                if m:
                    problems.append("%s:%d: no ts, but TIME_PREFIX matches at %d" % (
                        where, n, m.start()))
                continue
            if not m:
                problems.append("%s:%d: TIME_PREFIX does not match" % (where, n))
                continue
            text = line[m.end():m.end() + look]
            try:
                got = datetime.datetime.strptime(text[:len(ts)], pyfmt)
            except ValueError as e:
                problems.append("%s:%d: TIME_FORMAT does not read %r: %s" % (where, n, text, e))
                continue
            want = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")
            if got != want or len(ts) > look:
                problems.append("%s:%d: read %s, not %s" % (where, n, got, ts))
            checked += 1
        if not checked:
            problems.append("no golden record has a ts")
    r.check(not problems, "TIME_PREFIX/TIME_FORMAT/MAX_TIMESTAMP_LOOKAHEAD read every golden ts",
            problems)

    problems = []
    n = 0
    for key, value in st.items():
        if key.startswith("FIELDALIAS-"):
            pairs = splunk_names(value)
            if pairs is None:
                problems.append("%s: not (field AS|ASNEW name)+" % key)
                continue
            for src, _dest in pairs:
                n += 1
                why = splunk_path(src, sp)
                if why:
                    problems.append("%s: %s: %s" % (key, src, why))
        elif key.startswith("EVAL-"):
            for src in re.findall(r'spath\(_raw,\s*"([^"]+)"\)', value):
                n += 1
                why = splunk_path(src, sp)
                if why:
                    problems.append("%s: %s: %s" % (key, src, why))
    r.check(not problems and n, "every field props.conf reads is a schema path (%d)" % n,
            problems)


if __name__ == "__main__":
    sys.exit(main())
