#!/usr/bin/env python3
"""Where a binary's code goes: symbol sizes from `nm -S -C` summed per crate (the first path
segment of each demangled name), largest first. Needs an unstripped binary (the release one;
the station binary is stripped, and its LTO moves code between crates but not much in total).

    scripts/crate_sizes.py target/release/tag [N]
"""
import collections
import re
import subprocess
import sys

binary = sys.argv[1]
top = int(sys.argv[2]) if len(sys.argv) > 2 else 25
out = subprocess.run(["nm", "-S", "--size-sort", "-C", binary], capture_output=True, text=True,
                     check=True).stdout
sizes = collections.Counter()
for line in out.splitlines():
    parts = line.split(None, 3)
    if len(parts) < 4:
        continue
    name = re.sub(r"^(<|_<)+", "", parts[3])
    m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)::", name)
    sizes[m.group(1) if m else "(unnamed)"] += int(parts[1], 16)
total = sum(sizes.values())
print(f"{binary}: {total / 1e6:.1f} MB in symbols")
for crate, size in sizes.most_common(top):
    print(f"{size / 1e6:7.2f} MB  {100 * size / total:4.1f}%  {crate}")
