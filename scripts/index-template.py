#!/usr/bin/env python3
"""index-template - writes docs/elasticsearch/mxray-template.json from docs/schema.json.

usage: scripts/index-template.py [--check] [--ecs-table] [--schema FILE] [--out FILE]

The Elasticsearch 8 / OpenSearch 2 composable index template for mxray's
NDJSON records (PUT _index_template/mxray; docs/indexing.md).  Every field
path of the schema gets a mapping, derived from its JSON type; the few
things the JSON type does not say are in the tables below:

- IP: string paths that always hold an IP address (type ip);
- TEXT_LEAVES: free text, by the last name of the path (type text, with a
  keyword sub-field), KEYWORD_PATHS the exceptions;
- a string whose schema is the "time" definition (a capture time,
  2026-11-27T08:14:39.273158Z) is date_nanos; another string whose pattern is
  an RFC 3339 date-time (a certificate's dates) is date, whose range reaches
  past 2262;
- ECS: Elastic Common Schema names, added as field aliases (type alias) to
  mxray's own fields; an alias is left out (and listed in _meta) when its
  target is not in the schema or when one of mxray's own fields holds its
  name or a parent of it (a root "source" string would leave ECS's
  source.ip out).

Arrays are transparent (a path has the mapping of its items); an array of
objects is a plain object, never nested (an alias cannot point into a nested
object from outside it, and mxray's records are read one at a time).  An
object whose keys are names (additionalProperties, e.g. anomalies) is mapped
with dynamic: true under a dynamic template that gives its values their type.
A definition that refers to itself (proxy_tlv's tlvs) is followed to the
second level; the third is an object with enabled: false (kept in _source).

A path whose JSON types differ between records (see tests/index_template.py)
still gets one mapping, the most permissive one (object over keyword over
double over long over boolean), and is listed in _meta.type_conflicts.

--check exits 1 when the file differs from what this script writes; the test
(tests/index_template.py) does the same and checks the template's content.
--ecs-table prints the ECS alias table of docs/indexing.md (Markdown).
"""
import argparse
import collections
import json
import os
import re
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA = os.path.join(REPO, "docs", "schema.json")
OUT = os.path.join(REPO, "docs", "elasticsearch", "mxray-template.json")

# Strings that are always an IP address.
IP = {
    "client", "server",
    "proxy_source", "proxy_destination",
    "hops.client", "hops.server",
    "proxy.source", "proxy.destination",
}

# Free text, by the last name of the path: analysed (text) with a keyword
# sub-field for exact matches and aggregations.
TEXT_LEAVES = {
    "text", "last_reply", "arg", "desc", "title", "why", "fix", "detail",
    "explain", "explain_lines", "meaning", "enhanced_meaning", "reply_meaning",
    "cause", "diagnostic_code", "subject", "banner", "what", "note", "reason",
    "last_seen", "comment",
}
KEYWORD_PATHS = {"certificate.subject"}    # RFC 4514 names, not prose

KEYWORD_IGNORE_ABOVE = 1024     # longer values stay in _source, unindexed
LONG_KEYWORDS = {"ja3_string": 8191}    # 8191 * 4 UTF-8 bytes < Lucene's 32766-byte term
TEXT_KEYWORD_IGNORE_ABOVE = 1024
CAPTURE_TIME = {"type": "date_nanos", "format": "strict_date_optional_time_nanos"}
OTHER_TIME = {"type": "date", "format": "strict_date_optional_time"}
DATE_TIME_PATTERN = re.compile(r"^\^\[0-9\]\{4\}-\[0-9\]\{2\}-\[0-9\]\{2\}T")
RECURSION = 2       # a definition is followed this many times on one path

# (ECS name, mxray path, pending, where else mxray has the concept; {without}:
# the record types that lack the path).
# pending: the target is coming to the schema; until then the alias is left
# out quietly.  Checked by tests/index_template.py; listed in docs/indexing.md.
ECS = [
    ("@timestamp", "ts", False, "no ts: {without}"),
    ("network.community_id", "community_id", False, ""),
    ("network.protocol", "proto", False, "hops.proto (journey)"),
    ("observer.name", "sensor", True, ""),
    ("source.ip", "client", False, "hops.client (journey); proxy.source (sessions)"),
    ("source.port", "client_port", False, "hops.client_port (journey)"),
    ("destination.ip", "server", False, "hops.server (journey)"),
    ("destination.port", "server_port", False,
     "hops.server_port (journey); port (finding, audit.server)"),
    ("email.message_id", "headers.message_id", False,
     "message.message_id (transactions, data, pop3.response); message_id (journey);"
     " parts.message.message_id"),
    ("email.subject", "headers.subject", False,
     "message.subject (transactions, data, pop3.response); subject (journey);"
     " parts.message.subject"),
    ("email.from.address", "headers.from", False,
     "mailfrom (the envelope's MAIL FROM; transactions, failure)"),
    ("email.sender.address", "headers.sender", False, ""),
    ("email.to.address", "headers.to", False, "rcptto, recipients.addr (the envelope; transactions)"),
    ("email.cc.address", "headers.cc", False, ""),
    ("email.bcc.address", "headers.bcc", False, ""),
    ("email.reply_to.address", "headers.reply_to", False, ""),
    ("email.x_mailer", "headers.x_mailer", False, "headers.user_agent"),
    ("email.local_id", "queue_id", False, "hops.queue_id (journey); original.queue_id (failure)"),
    ("email.attachments.file.name", "parts.filename", False, "parts.uuencoded.name"),
    ("email.attachments.file.mime_type", "parts.content_type", False, "parts.detected_type (libmagic's)"),
    ("email.attachments.file.size", "parts.size", False, "parts.uuencoded.size"),
    ("email.attachments.file.hash.md5", "parts.md5", False, ""),
    ("email.attachments.file.hash.sha1", "parts.sha1", False, ""),
    ("email.attachments.file.hash.sha256", "parts.sha256", False, "parts.uuencoded.sha256"),
    ("file.hash.md5", "parts.md5", False, ""),
    ("file.hash.sha1", "parts.sha1", False, ""),
    ("file.hash.sha256", "parts.sha256", False, "parts.uuencoded.sha256; sha256 (the whole message)"),
    ("tls.version", "version", False, "tls_handshake.version (sessions)"),
    ("tls.cipher", "cipher", False, "tls_handshake.cipher (sessions)"),
    ("tls.established", "completed", False, "tls_handshake.completed (sessions)"),
    ("tls.next_protocol", "alpn", False, ""),
    ("tls.client.server_name", "sni", False, "tls_handshake.sni (sessions)"),
    ("tls.client.ja3", "ja3", False, ""),
    ("tls.client.supported_ciphers", "ciphers_offered", False, ""),
    ("tls.server.ja3s", "ja3s", False, ""),
    ("tls.server.hash.sha256", "certificate.sha256", False, ""),
    ("tls.server.subject", "certificate.subject", False, ""),
    ("tls.server.issuer", "certificate.issuer", False, ""),
    ("tls.server.not_before", "certificate.not_before", False, ""),
    ("tls.server.not_after", "certificate.not_after", False, ""),
    ("tls.server.x509.subject.distinguished_name", "certificate.subject", False, ""),
    ("tls.server.x509.issuer.distinguished_name", "certificate.issuer", False, ""),
    ("tls.server.x509.not_before", "certificate.not_before", False, ""),
    ("tls.server.x509.not_after", "certificate.not_after", False, ""),
    ("tls.server.x509.public_key_algorithm", "certificate.key.type", False, ""),
    ("tls.server.x509.public_key_size", "certificate.key.bits", False, ""),
    ("tls.server.x509.signature_algorithm", "certificate.signature_algorithm", False, ""),
]


# ---------------------------------------------------------------- the schema

class Field:
    """What the schema says of one path, over all record types."""

    def __init__(self):
        self.types = set()          # JSON types, arrays transparent, null left out
        self.records = set()
        self.capture_time = False   # a string from the "time" definition
        self.other_time = False     # a string with an RFC 3339 date-time pattern
        self.bounded = True         # every string value is from an enum or a const
        self.map = False            # path ends in "*": the values of a name->value object
        self.cut = False            # a self-reference followed no further


def json_type(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    return "array" if isinstance(v, list) else "object"


def declared_types(node):
    """The JSON types a schema node names itself: its type, or those of its const and enum."""
    t = node.get("type")
    types = {t} if isinstance(t, str) else set(t) if isinstance(t, list) else set()
    if "const" in node:
        types.add(json_type(node["const"]))
    types.update(json_type(v) for v in node.get("enum", []))
    return types


class Walker:
    def __init__(self, schema):
        self.defs = schema.get("$defs", {})
        self.fields = collections.defaultdict(Field)

    def resolve(self, node, stack):
        """node with its $ref followed (sibling keywords kept), and the
        stack of definitions followed on the way."""
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if not ref.startswith("#/$defs/"):
                raise SystemExit("index-template: unsupported $ref %s" % ref)
            name = ref[len("#/$defs/"):]
            merged = dict(self.defs[name])
            merged.update({k: v for k, v in node.items() if k != "$ref"})
            node, stack = merged, stack + (name,)
        return node, stack

    def walk(self, node, path, record, stack=()):
        node, stack = self.resolve(node, stack)
        if not isinstance(node, dict):
            return
        if any(stack.count(d) > RECURSION for d in stack):
            f = self.fields[path]
            f.types.add("object")
            f.records.add(record)
            f.cut = True
            return
        for key in ("anyOf", "oneOf", "allOf"):
            for alt in node.get(key, []):
                self.walk(alt, path, record, stack)
        types = declared_types(node)
        enum = "const" in node or "enum" in node
        if "properties" in node or isinstance(node.get("additionalProperties"), dict) \
                or "patternProperties" in node:
            types.add("object")
        if "items" in node or "prefixItems" in node:
            types.add("array")
        types.discard("null")
        if path and types - {"array"}:
            f = self.fields[path]
            f.types.update(types - {"array"})
            f.records.add(record)
            if "string" in types:
                if stack and stack[-1] == "time":
                    f.capture_time = True
                elif DATE_TIME_PATTERN.match(node.get("pattern", "")):
                    f.other_time = True
                if not enum:
                    f.bounded = False
        if "array" in types:
            items = node.get("items")
            if isinstance(items, dict):
                self.walk(items, path, record, stack)
            for it in node.get("prefixItems", []):
                self.walk(it, path, record, stack)
        for k, v in node.get("properties", {}).items():
            self.walk(v, path + (k,), record, stack)
        ap = node.get("additionalProperties")
        values = [ap] if isinstance(ap, dict) else []
        values += list(node.get("patternProperties", {}).values())
        for v in values:
            self.walk(v, path + ("*",), record, stack)
            self.fields[path + ("*",)].map = True


def schema_fields(schema):
    """{path tuple: Field} over every record type of the schema."""
    w = Walker(schema)
    for alt in schema.get("oneOf", []) + schema.get("anyOf", []):
        node, stack = w.resolve(alt, ())
        record = node.get("properties", {}).get("type", {}).get("const", "?")
        w.walk(node, (), record, stack)
    return w.fields


# ---------------------------------------------------------------- the mapping

def leaf_mapping(dotted, f):
    """The mapping of a path that is not an object, and whether its JSON
    types conflict."""
    types = f.types - {"object"}
    last = dotted.rsplit(".", 1)[-1]
    if types == {"string"}:
        if dotted in IP:
            return {"type": "ip"}
        if f.capture_time:
            return dict(CAPTURE_TIME)
        if f.other_time:
            return dict(OTHER_TIME)
        if last in TEXT_LEAVES and dotted not in KEYWORD_PATHS:
            return {"type": "text",
                    "fields": {"keyword": {"type": "keyword",
                                           "ignore_above": TEXT_KEYWORD_IGNORE_ABOVE}}}
        if f.bounded:
            return {"type": "keyword"}
        return {"type": "keyword", "ignore_above": LONG_KEYWORDS.get(last, KEYWORD_IGNORE_ABOVE)}
    if types == {"integer"}:
        return {"type": "long"}
    if types <= {"integer", "number"}:
        return {"type": "double"}
    if types == {"boolean"}:
        return {"type": "boolean"}
    # Types that conflict: a keyword takes strings, numbers and booleans.
    return {"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE}


def build(schema):
    """The index template (a dict) for a schema (a dict)."""
    fields = schema_fields(schema)
    props = {}
    conflicts = {}
    dynamic_templates = []
    text_fields = []

    def slot(path):
        """The properties dict that holds path's last name."""
        d = props
        for name in path[:-1]:
            d = d.setdefault(name, {}).setdefault("properties", {})
        return d

    for path in sorted(fields):
        f = fields[path]
        dotted = ".".join(path)
        if len(f.types) > 1:
            conflicts[dotted] = sorted(f.types)
        if path[-1] == "*":
            leaf = leaf_mapping(dotted, f)
            parent = ".".join(path[:-1])
            dynamic_templates.append({"mxray_" + parent.replace(".", "_") + "_values": {
                "path_match": parent + ".*", "mapping": leaf}})
            continue
        if f.map or ("object" in f.types and path + ("*",) in fields):
            m = slot(path).setdefault(path[-1], {})
            m["type"] = "object"
            m["dynamic"] = True
            continue
        if f.cut:
            slot(path)[path[-1]] = {"type": "object", "enabled": False}
            continue
        if "object" in f.types:
            slot(path).setdefault(path[-1], {}).setdefault("properties", {})
            continue
        m = leaf_mapping(dotted, f)
        if m["type"] == "text":
            text_fields.append(dotted)
        slot(path)[path[-1]] = m

    aliases, not_mapped = add_aliases(props, fields)

    meta = {
        "description": "mxray NDJSON records (docs/schema.json); docs/indexing.md",
        "generated_by": "scripts/index-template.py from docs/schema.json: do not edit",
    }
    if not_mapped:
        meta["ecs_not_mapped"] = not_mapped
    if conflicts:
        meta["type_conflicts"] = conflicts

    mappings = {"dynamic": False}
    if dynamic_templates:
        mappings["dynamic_templates"] = dynamic_templates
    mappings["properties"] = sort_props(props)
    return {
        "index_patterns": ["mxray-*"],
        "priority": 200,
        "version": 1,
        "_meta": meta,
        "template": {
            "settings": {
                "index": {
                    "number_of_shards": 1,
                    "codec": "best_compression",
                    "mapping": {"total_fields": {"limit": 2000}},
                    "query": {"default_field": ["type", "community_id"] + text_fields},
                }
            },
            "mappings": mappings,
        },
    }


def sort_props(props):
    out = {}
    for k in sorted(props):
        m = props[k]
        if "properties" in m:
            m = dict(m)
            m["properties"] = sort_props(m["properties"])
        out[k] = m
    return out


def add_aliases(props, fields):
    """Adds the ECS aliases that can be added; returns the ones added and
    {ECS name: why not} for the others."""
    added, not_mapped = [], {}
    for ecs, target, pending, _also in ECS:
        tpath = tuple(target.split("."))
        f = fields.get(tpath)
        if f is None:
            not_mapped[ecs] = ("pending: " if pending else "missing: ") + \
                "%s is not in the schema" % target
            continue
        if "object" in f.types or f.map or f.cut:
            not_mapped[ecs] = "%s is an object, not a field" % target
            continue
        epath = tuple(ecs.split("."))
        why = None
        d = props
        for i, name in enumerate(epath[:-1]):
            m = d.get(name)
            if m is None:
                break
            if "properties" not in m:
                why = "mxray's own %s is a field (%s), not an object" % (
                    ".".join(epath[:i + 1]), m.get("type"))
                break
            d = m["properties"]
        else:
            if epath[-1] in d:
                why = "mxray has a field %s already" % ecs
        if why:
            not_mapped[ecs] = why
            continue
        d = props
        for name in epath[:-1]:
            d = d.setdefault(name, {}).setdefault("properties", {})
        d[epath[-1]] = {"type": "alias", "path": target}
        added.append(ecs)
    return added, not_mapped


def render(template):
    return json.dumps(template, indent=2, ensure_ascii=False) + "\n"


def ecs_table(schema):
    """The Markdown table of docs/indexing.md."""
    fields = schema_fields(schema)
    everything = set().union(*(f.records for f in fields.values()))
    template = build(schema)
    not_mapped = template["_meta"].get("ecs_not_mapped", {})
    rows = ["| ECS name | mxray field | record types | also in mxray |",
            "|---|---|---|---|"]
    for ecs, target, _pending, also in ECS:
        f = fields.get(tuple(target.split(".")))
        records = ", ".join(sorted(f.records)) if f else "(not yet in the schema)"
        if len(records) > 60:
            records = "%d record types" % len(f.records)
        if f and "{without}" in also:
            also = also.replace("{without}", ", ".join(sorted(everything - f.records)))
        name = "`%s`" % ecs
        if ecs in not_mapped:
            name += " (not mapped: %s)" % not_mapped[ecs]
        rows.append("| %s | `%s` | %s | %s |" % (name, target, records, also))
    return "\n".join(rows) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--schema", default=SCHEMA)
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--check", action="store_true",
                    help="exit 1 when --out differs from what would be written")
    ap.add_argument("--ecs-table", action="store_true", help="print the ECS alias table")
    args = ap.parse_args()
    with open(args.schema, encoding="utf-8") as fh:
        schema = json.load(fh)
    if args.ecs_table:
        sys.stdout.write(ecs_table(schema))
        return 0
    text = render(build(schema))
    if args.check:
        try:
            with open(args.out, encoding="utf-8") as fh:
                same = fh.read() == text
        except FileNotFoundError:
            same = False
        if not same:
            print("%s is stale: run scripts/index-template.py" % args.out, file=sys.stderr)
            return 1
        return 0
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
