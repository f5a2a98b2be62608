#!/usr/bin/env python3
"""Validates every output cli_test.sh recorded against docs/schema/.

Usage: validate_outputs.py SCHEMA_DIR RUN_DIR
RUN_DIR holds, per run N: N.args (the arguments, NUL-separated), N.rc, N.out, N.err.
Picks the schema from the command line the way dragonmem(1) documents the outputs:
exit 0 prints the command's document on stdout (or JSON Lines with --jsonl); a failure
prints the error document on stderr (check and destroy print their report on stdout too).
Prints one line per invalid output and "schema: N outputs valid, M invalid"; exits 1
when M > 0.
"""
import json
import os
import sys
import warnings

import jsonschema

warnings.simplefilter("ignore", DeprecationWarning)  # RefResolver: the API both 4.10 (Debian 12) and 4.2x have

BASE = "https://dragonmem.invalid/schema/"
GLOBAL_WITH_VALUE = {"--lock-timeout"}
GLOBAL_FLAGS = {"--pretty"}
# Options that take a value, per command, so that values are not taken for positionals.
WITH_VALUE = {"--serial", "--type", "--size", "--count", "--timeout", "--id", "--offset", "--length", "--env",
              "--uid", "--min-block", "--max-allocations", "--mode", "--prealloc", "--lock-timeout", "--to", "--with",
              "--with-id", "--start", "--stop", "--numa-node", "--mem-type", "--interval", "--svg"}


def load_schemas(schema_dir):
    store = {}
    for name in os.listdir(schema_dir):
        if name.endswith(".json"):
            with open(os.path.join(schema_dir, name)) as f:
                store[BASE + name] = json.load(f)
    return store


def validator(store, name):
    schema = store[BASE + name]
    resolver = jsonschema.RefResolver(BASE + name, schema, store=store)
    return jsonschema.Draft202012Validator(schema, resolver=resolver)


def parse(args):
    """(command, positionals, options) of a dragonmem command line."""
    command, positionals, options = None, [], {}
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            positionals += args[i + 1:]
            break
        if a.startswith("--"):
            key, eq, value = a.partition("=")
            if not eq and key in WITH_VALUE and i + 1 < len(args):
                value = args[i + 1]
                i += 1
            options[key] = value
        elif a == "-V":
            options["--version"] = ""
        elif command is None:
            command = a
        else:
            positionals.append(a)
        i += 1
    return command, positionals, options


def stdout_schemas(command, positionals, options):
    """[(schema for line 1 or the document, schema for the other lines)] or None to skip."""
    jsonl = "--jsonl" in options
    if "--help" in options or "-h" in positionals or "--table" in options:  # --table: text for people
        return None
    if command is None:
        return ("version.json", None) if "--version" in options else None
    if command == "read" or (command == "dump" and "--raw" in options):
        return None
    if command == "ls":
        if positionals or "--serial" in options:
            return ("allocation.json", "allocation.json") if jsonl else ("ls_pool.json", None)
        if "--type" in options:
            return ("ls_type_line.json", "ls_type_line.json") if jsonl else ("ls_type.json", None)
        return ("pool_or_error", "pool_or_error") if jsonl else ("ls.json", None)
    if command == "stat":
        return ("stat_line.json", "stat_line.json")  # JSON Lines always
    if command == "dump":
        if "--svg" in options:
            return ("dump_svg.json", None)
        if "--id" in options:
            return ("dump_id.json", None)
        return ("dump_head.json", "allocation.json") if jsonl else ("dump.json", None)
    if command in ("alloc", "free"):
        return ("allocation.json", "allocation.json") if jsonl else (command + ".json", None)
    if command in ("create", "attach", "serialize", "write", "check", "destroy", "info", "copy", "clear", "hash",
                   "equal"):
        return (command + ".json", None)
    return ("unknown", None)


def main():
    schema_dir, run_dir = sys.argv[1], sys.argv[2]
    store = load_schemas(schema_dir)
    validators = {name[len(BASE):]: validator(store, name[len(BASE):]) for name in store}
    valid = invalid = 0

    def check(what, schema, text, where):
        nonlocal valid, invalid
        try:
            document = json.loads(text)
        except ValueError as e:
            invalid += 1
            print(f"INVALID {where}: {what} is not JSON: {e}")
            return
        names = ["pool.json", "pool_error.json"] if schema == "pool_or_error" else [schema]
        errors = []
        for name in names:
            if name not in validators:
                errors = [f"no schema for this output ({name})"]
                break
            found = sorted(validators[name].iter_errors(document), key=lambda e: list(e.path))
            if not found:
                valid += 1
                return
            errors += [f"{name}: {'/'.join(map(str, e.path))}: {e.message[:300]}" for e in found[:3]]
        invalid += 1
        print(f"INVALID {where}: {what}: " + "; ".join(errors))

    runs = sorted({int(n.split(".")[0]) for n in os.listdir(run_dir) if n.split(".")[0].isdigit()})
    for n in runs:
        path = os.path.join(run_dir, str(n))
        with open(path + ".args", "rb") as f:
            args = [a.decode(errors="replace") for a in f.read().split(b"\0")[:-1]]
        with open(path + ".rc") as f:
            rc = int(f.read().strip() or "0")
        with open(path + ".out", "rb") as f:
            out = f.read()
        with open(path + ".err", "rb") as f:
            err = f.read()
        where = "dragonmem " + " ".join(args)
        if rc == 124 or rc >= 128:  # killed by the test's own time limit
            continue
        command, positionals, options = parse(args)
        picked = stdout_schemas(command, positionals, options)
        if rc != 0 and err.strip():
            check("stderr", "error_document.json", err.decode(errors="replace"), where)
        if picked is None or not out.strip():
            continue
        first, rest = picked
        text = out.decode(errors="replace")
        if rest is None:
            check("stdout", first, text, where)
            continue
        lines = text.splitlines()
        for i, line in enumerate(lines):
            check(f"stdout line {i + 1}", first if i == 0 else rest, line, where)
    print(f"schema: {valid} outputs valid, {invalid} invalid")
    return 1 if invalid else 0


if __name__ == "__main__":
    sys.exit(main())
