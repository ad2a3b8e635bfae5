#!/usr/bin/env python3
"""Writes a C file holding the UI's static files as byte arrays (used by meson)."""
import os
import sys

out, files = sys.argv[1], sys.argv[2:]
with open(out, "w") as f:
    f.write("/* Generated from %s: do not edit. */\n#include <stddef.h>\n\n"
            % ", ".join(os.path.basename(p) for p in files))
    for path in files:
        name = os.path.basename(path).replace(".", "_").replace("-", "_")
        data = open(path, "rb").read()
        f.write("const unsigned char ui_file_%s[] = {\n" % name)
        for i in range(0, len(data), 16):
            f.write("    " + ", ".join(str(b) for b in data[i:i + 16]) + ",\n")
        f.write("    0};\nconst size_t ui_file_%s_len = %d;\n\n" % (name, len(data)))
