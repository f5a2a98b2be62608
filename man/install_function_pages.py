#!/usr/bin/env python3
"""Run by `meson install`: installs a man page link, man3/<function>.3 holding
`.so man3/libdragonmem.3`, for every function the installed C headers declare, so that
`man dragon_memory_alloc` opens libdragonmem(3). The list is read from the headers just
installed (scripts/c_api_functions.py), so a function added to a header gets its page.
Usage: install_function_pages.py INCLUDEDIR MANDIR (as meson's options: relative to
the prefix, or absolute)."""
import glob
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from c_api_functions import declared_functions  # noqa: E402


def installed(path):
    """Where meson's install put `path` (an option value), DESTDIR included."""
    if os.path.isabs(path):
        return os.environ.get("DESTDIR", "") + path
    return os.path.join(os.environ["MESON_INSTALL_DESTDIR_PREFIX"], path)


def main(includedir, mandir):
    include = installed(includedir)
    headers = sorted(glob.glob(os.path.join(include, "dragon", "*.h")) +
                     glob.glob(os.path.join(include, "dragonmem", "*.h")))
    if not headers:
        print(f"install_function_pages: no C headers under {include}", file=sys.stderr)
        return 1
    names = set()
    for header in headers:
        with open(header, encoding="utf-8") as f:
            names |= declared_functions(f.read())
    man3 = os.path.join(installed(mandir), "man3")
    if os.environ.get("MESON_INSTALL_DRY_RUN"):
        print(f"would install {len(names)} function pages in {man3}")
        return 0
    os.makedirs(man3, exist_ok=True)
    for name in sorted(names):
        with open(os.path.join(man3, name + ".3"), "w", encoding="utf-8") as f:
            f.write(".so man3/libdragonmem.3\n")
    print(f"Installing {len(names)} function pages (.so man3/libdragonmem.3) to {man3}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
