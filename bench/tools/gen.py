#!/usr/bin/env python3
"""Generates the inputs of the end-to-end benchmarks (bench/run, bench/soak).

  gen.py captures LOOKOUT OUT_DIR ENTRIES   text captures with unique titles, about ENTRIES entries in all
  gen.py listings OUT_DIR PAGES ITEMS [SEED [rolling]]
                                            PAGES listing pages (the selectors blog format), ITEMS
                                            posts each; with `rolling`, SEED+1 adds one post to the
                                            top of each page and drops the oldest, as a live
                                            listing does

Captures are the three real text captures in tests/fixtures with every title made
unique per copy (the titles come from `lookout parse --json`, so the generator knows
exactly what the parser sees); listing pages are synthetic, in the markup of
tests/fixtures/selectors_blog.html.
"""
import json
import os
import subprocess
import sys

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures")
TEXT_CAPTURES = ["hf_papers_apr17.txt", "hf_papers_may20.txt", "aitopics_energy.txt"]


def titles_of(lookout, path):
    out = subprocess.run([lookout, "parse", path, "--json"], check=True, capture_output=True, text=True).stdout
    return [json.loads(line)["title"] for line in out.splitlines() if line.strip()]


def uniquify(text, titles, tag):
    for t in sorted(set(titles), key=len, reverse=True):
        text = text.replace(t, f"{t} [{tag}]")
    return text


def captures(lookout, out_dir, entries):
    os.makedirs(out_dir, exist_ok=True)
    bases = []
    for name in TEXT_CAPTURES:
        path = os.path.join(FIXTURES, name)
        with open(path, encoding="utf-8") as f:
            bases.append((name, f.read(), titles_of(lookout, path)))
    written = files = 0
    while written < entries:
        name, text, titles = bases[files % len(bases)]
        with open(os.path.join(out_dir, f"{files:06d}-{name}"), "w", encoding="utf-8") as f:
            f.write(uniquify(text, titles, f"c{files}"))
        written += len(titles)
        files += 1
    print(f"{files} files, {written} entries")


def listing(page, items, seed, rolling=False):
    posts = []
    for i in range(items):
        n = page * 10_000_000 + seed + items - 1 - i if rolling else seed * 100_000 + page * 1000 + i
        day = 1 + (n % 28)
        posts.append(
            f'''    <article class="post">
      <h2 class="post-title"><a href="posts/p{page}-{n}.html">Post {n}: notes on sparse attention, page {page}</a></h2>
      <p class="byline">by <a href="/people/a">Ada Example</a> and <a href="/people/b">Bo Sample</a></p>
      <time datetime="2026-05-{day:02d}T10:00:00+00:00">{day} May 2026</time>
      <p class="teaser">Post {n} studies how a counting circuit forms during training and why width matters more than depth; a short teaser of typical length.</p>
    </article>
''')
    return f'''<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Lab Blog {page} – Posts</title>
</head>
<body>
  <header><a href="/">Home</a> <a href="/blog/">Blog</a></header>
  <main>
    <h1>Posts</h1>
{"".join(posts)}    <nav class="pager"><a href="?page=2">Older posts</a></nav>
  </main>
</body>
</html>
'''


def listings(out_dir, pages, items, seed=0, rolling=False):
    os.makedirs(out_dir, exist_ok=True)
    for p in range(pages):
        tmp = os.path.join(out_dir, f".page-{p:03d}.html.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(listing(p, items, seed, rolling))
        os.replace(tmp, os.path.join(out_dir, f"page-{p:03d}.html"))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "captures":
        captures(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif cmd == "listings":
        listings(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]),
                 int(sys.argv[5]) if len(sys.argv) > 5 else 0, len(sys.argv) > 6 and sys.argv[6] == "rolling")
    else:
        sys.exit(__doc__)
