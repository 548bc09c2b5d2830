#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes a C file defining `const char NAME[]` with the bytes of a text
file, so that a binary can serve the file verbatim (the Varlink interface
description). Usage: embed-text.py NAME INPUT OUTPUT"""

import sys

name, src, dst = sys.argv[1:4]
with open(src, "rb") as f:
    data = f.read()
lines = ["/* Generated from %s by scripts/embed-text.py. */" % src.split("/")[-1],
         "const char %s[] =" % name]
for chunk in data.splitlines(keepends=True) or [b""]:
    esc = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "\\%03o" % ord(c)
                  for c in chunk.decode("latin-1"))
    lines.append('        "%s"' % esc)
lines[-1] += ";"
with open(dst, "w") as f:
    f.write("\n".join(lines) + "\n")
