#!/usr/bin/env python3
"""Writes tests/corpus/feedparser_counts.json: Python feedparser's reading of every
feed under tests/corpus/ (entry count, bozo, detected encoding), the oracle that
tests/feed_corpus.rs compares lookout against. Run once when the corpus changes:

    pip install feedparser==6.0.14 && python3 tests/corpus/feedparser_counts.py

A feedparser test file may carry the HTTP headers its test server sends as
`Header: Name: value` lines in its leading comment; they are passed to feedparser
here, and tests/feed_corpus.rs hands the Content-Type to lookout the same way.
"""
import json
import os
import re

import feedparser

ROOT = os.path.dirname(os.path.abspath(__file__))
HEADER = re.compile(rb"^Header:\s+([^:]+):(.+)$", re.MULTILINE)


def main():
    counts = {}
    for folder, _, files in sorted(os.walk(ROOT)):
        for name in sorted(files):
            if not name.endswith((".xml", ".json", ".rdf", ".atom")):
                continue
            if name == "feedparser_counts.json":
                continue
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, ROOT)
            with open(path, "rb") as f:
                data = f.read()
            headers = {k.strip().decode(): v.strip().decode() for k, v in HEADER.findall(data)}
            d = feedparser.parse(data, response_headers=headers)
            counts[rel] = {
                "entries": len(d.entries),
                "bozo": bool(d.bozo),
                "encoding": d.get("encoding", ""),
                "version": d.get("version", ""),
            }
    out = {"feedparser": feedparser.__version__, "feeds": counts}
    with open(os.path.join(ROOT, "feedparser_counts.json"), "w") as f:
        json.dump(out, f, indent=0, sort_keys=True)
        f.write("\n")
    read = sum(1 for c in counts.values() if c["entries"] > 0)
    print(f"{len(counts)} files, {read} with entries")


if __name__ == "__main__":
    main()
