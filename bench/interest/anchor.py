"""The anchor of the interest evaluation: scikit-learn's TfidfVectorizer + LinearSVC,
configured as arxiv-sanity-lite configures them (compute.py and serve.py), on the same
papers, split and likes as bench/interest/eval.rs. Prints one JSON object a line.

    python anchor.py [--data FILE] [--later-from ID] [--liked N] [--min-relevant N]
                     [--pruning asl|lookout]
    python anchor.py --timing N

--pruning asl keeps arxiv-sanity-lite's min_df=5, max_df=0.1 literally; --pruning lookout
relaxes them for small stores exactly as lookout does (Pruning::for_corpus), so that the
two systems see the same vocabulary rules.
"""

import argparse
import gzip
import json
import resource
import time

import numpy as np
from sklearn import svm
from sklearn.feature_extraction.text import TfidfVectorizer


def read_papers(path):
    opener = gzip.open if path.endswith(".gz") else open
    papers = []
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            p = json.loads(line)
            cats = p.get("categories", [])
            if isinstance(cats, str):
                cats = cats.split()
            papers.append((p["id"], cats, p.get("title", ""), p.get("abstract", "")))
    papers.sort(key=lambda p: p[0])
    return papers


def pruning(n_docs, mode):
    if mode == "asl":
        return 5, 0.1
    # lookout's Pruning::for_corpus
    return min(max(n_docs // 2000, 1), 5), (0.1 if n_docs >= 2000 else 1.0)


def vectorizer(n_docs, mode, ngrams=2):
    min_df, max_df = pruning(n_docs, mode)
    # arxiv-sanity-lite compute.py, with its defaults num=20000, min_df=5, max_df=0.1.
    return TfidfVectorizer(
        input="content",
        encoding="utf-8",
        decode_error="replace",
        strip_accents="unicode",
        lowercase=True,
        analyzer="word",
        stop_words="english",
        token_pattern=r"(?u)\b[a-zA-Z_][a-zA-Z0-9_]+\b",
        ngram_range=(1, ngrams),
        max_features=20000,
        norm="l2",
        use_idf=True,
        smooth_idf=True,
        sublinear_tf=True,
        max_df=max_df,
        min_df=min_df,
    )


def classifier(c=0.1):
    # arxiv-sanity-lite serve.py (C defaults to 0.1 there).
    return svm.LinearSVC(class_weight="balanced", verbose=False, max_iter=10000, tol=1e-6, C=c)


def text(p):
    return p[2] + " " + p[3]


def ranking(args):
    papers = read_papers(args.data)
    # The same split as eval.rs: the papers from --later-from on, or the later half.
    if args.later_from:
        split = sum(1 for p in papers if p[0] < args.later_from)
    else:
        split = len(papers) // 2
    earlier, later = papers[:split], papers[split:]
    counts = {}
    for p in earlier:
        for c in p[1]:
            counts.setdefault(c, [0, 0])[0] += 1
    for p in later:
        for c in p[1]:
            counts.setdefault(c, [0, 0])[1] += 1
    cats = sorted(c for c, (e, l) in counts.items() if e >= args.liked and l >= args.min_relevant)
    if args.categories:
        cats = args.categories.split(",")
    for cat in cats:
        pos, neg = [], []
        for p in earlier:
            if cat in p[1] and len(pos) < args.liked:
                pos.append(p)
            else:
                neg.append(p)
        train = pos + neg
        y = np.array([1] * len(pos) + [0] * len(neg))
        start = time.perf_counter()
        v = vectorizer(len(train), args.pruning, args.ngrams)
        x = v.fit_transform([text(p) for p in train])
        clf = classifier(args.c)
        clf.fit(x, y)
        train_ms = (time.perf_counter() - start) * 1e3
        s = clf.decision_function(v.transform([text(p) for p in later]))
        order = sorted(range(len(later)), key=lambda i: (-s[i], i))
        relevant = sum(1 for p in later if cat in p[1])
        hits = lambda k: sum(1 for i in order[:k] if cat in later[i][1])
        print(json.dumps({
            "system": "sklearn-" + args.pruning + args.variant,
            "category": cat,
            "liked": len(pos),
            "train": len(train),
            "ranked": len(later),
            "relevant": relevant,
            "p20": hits(20) / 20,
            "r100": hits(100) / max(relevant, 1),
            "r50": hits(50) / max(relevant, 1),
            "top20": [later[i][0] for i in order[:20]],
            "train_ms": train_ms,
            "vocabulary": len(v.vocabulary_),
        }))


def timing(args):
    # The same documents as eval.rs --timing: the real papers, then Zipf-distributed
    # synthetic abstracts (numpy's generator, so not the same words, same distribution).
    papers = read_papers(args.data)
    docs = [text(p) for p in papers[: args.timing]]
    rng = np.random.default_rng(42)
    ranks = np.arange(1, 200_001)
    probs = (1.0 / ranks) / (1.0 / ranks).sum()
    while len(docs) < args.timing:
        n = min(10_000, args.timing - len(docs))
        words = rng.choice(200_000, size=(n, 160), p=probs)
        docs.extend(" ".join("w%d" % w for w in row) for row in words)
    y = np.zeros(len(docs), dtype=int)
    y[:40] = 1
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    v = vectorizer(len(docs), args.pruning)
    x = v.fit_transform(docs)
    clf = classifier()
    clf.fit(x, y)
    train_s = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    n = min(len(docs), 20_000)
    for d in docs[:n]:
        clf.decision_function(v.transform([d]))
    score_us = (time.perf_counter() - start) * 1e6 / n
    print(json.dumps({
        "system": "sklearn-" + args.pruning,
        "timing_docs": args.timing,
        "train_s": train_s,
        "score_us_per_doc": score_us,
        "vocabulary": len(v.vocabulary_),
        "peak_rss_mib_before": before / 1024,
        "peak_rss_mib_after_training": after / 1024,
    }))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="bench/interest/data/arxiv-math-2505.jsonl")
    parser.add_argument("--liked", type=int, default=40)
    parser.add_argument("--min-relevant", type=int, default=20)
    parser.add_argument("--later-from")
    parser.add_argument("--categories")
    parser.add_argument("--pruning", choices=["asl", "lookout"], default="lookout")
    parser.add_argument("--timing", type=int)
    # Sensitivity checks only (BENCHMARKS.md "Interests"): the anchor's C and n-gram range.
    parser.add_argument("--c", type=float, default=0.1)
    parser.add_argument("--ngrams", type=int, choices=[1, 2], default=2)
    args = parser.parse_args()
    defaults = args.c == 0.1 and args.ngrams == 2
    args.variant = "" if defaults else f"-C{args.c:g}-ngrams{args.ngrams}"
    if args.timing:
        timing(args)
    else:
        ranking(args)
