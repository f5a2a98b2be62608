#!/usr/bin/env python3
"""Prints the functions the given C headers declare, one name a line, sorted.

The one list of the C API's functions, read from the headers themselves so that it
cannot drift from them: man/install_function_pages.py installs a man page link for each,
and tests/packaging checks each is exported by libdragonmem.so and has its page.
Usage: c_api_functions.py HEADER.h...
"""
import re
import sys


def declared_functions(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)  # comments
    text = re.sub(r"//[^\n]*", " ", text)
    # `#ifdef __cplusplus extern "C" { #endif` wrappers, then every preprocessor line
    # (continuations included).
    text = re.sub(r'extern\s+"C"\s*\{', " ", text)
    text = re.sub(r"#\s*ifdef\s+__cplusplus\s*\}\s*#\s*endif", " ", text)
    text = re.sub(r"^[ \t]*#(?:[^\n]*\\\n)*[^\n]*", " ", text, flags=re.M)
    names = set()
    depth = 0
    statement = ""
    body_of_function = False
    for ch in text:
        if ch == "{":
            if depth == 0:
                # An inline function's body: what came before is a definition.
                body_of_function = statement.rstrip().endswith(")")
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0 and body_of_function:
                statement = ""
                body_of_function = False
                continue
        elif ch == ";" and depth == 0:
            s = " ".join(statement.split())
            statement = ""
            # A declaration at file scope with a parameter list, not a typedef (function
            # pointer types) nor a static variable or inline function.
            if "(" in s and not re.match(r"(typedef|static)\b", s):
                m = re.search(r"([A-Za-z_]\w*)\s*\(", s)
                if m:
                    names.add(m.group(1))
            continue
        if depth == 0:
            statement += ch
    return names


def main(paths):
    if not paths:
        print(__doc__, file=sys.stderr)
        return 2
    names = set()
    for path in paths:
        with open(path, encoding="utf-8") as f:
            names |= declared_functions(f.read())
    for name in sorted(names):
        print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
