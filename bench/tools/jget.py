#!/usr/bin/env python3
"""jget.py FILE KEY... : prints the values at KEYs (dot paths) of a JSON file, space-separated;
a key of the form results[command=NAME].mean picks a list element by a field."""
import json
import re
import sys

doc = json.load(open(sys.argv[1]))
out = []
for path in sys.argv[2:]:
    v = doc
    for part in path.split("."):
        m = re.fullmatch(r"(\w+)\[(\w+)=([^\]]+)\]", part)
        if m:
            v = next(x for x in v[m.group(1)] if str(x.get(m.group(2))) == m.group(3))
        else:
            v = v[part]
    out.append(str(v))
print(" ".join(out))
