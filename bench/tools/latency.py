#!/usr/bin/env python3
"""Drop -> feed and drop -> webhook latency against a running lookout daemon.

  latency.py --base http://127.0.0.1:PORT --drop DIR --capture FILE --title TITLE
             [--drops 200] [--webhook-port PORT] [--gap-ms 50] [--gzip] [--out stats.json]

For each drop, the capture FILE is written to DIR under a dotfile name with TITLE
replaced by a unique "Latency probe N TOKEN", then renamed into place; the clock
starts at the rename. The client polls /feed.xml with If-None-Match over one
keep-alive connection (1 ms apart) until a 200 holds the probe title: that is the
drop -> feed latency. With --gzip the client asks for gzip as readers do
(Accept-Encoding: gzip), insists on getting it and decodes each 200 before
looking for the title. With --webhook-port, a local HTTP receiver records when a
POST naming the probe arrives: the drop -> webhook latency (the daemon's config
must route a rule matching "probe" to a webhook at that port).
"""
import argparse
import gzip
import http.client
import http.server
import json
import os
import secrets
import threading
import time
import urllib.parse

arrivals = {}  # token -> monotonic arrival time
arrivals_lock = threading.Lock()


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        now = time.monotonic()
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        text = body.decode("utf-8", "replace")
        with arrivals_lock:
            for token in list(pending):
                if token in text and token not in arrivals:
                    arrivals[token] = now
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


pending = set()


def percentile(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(p / 100.0 * len(xs) + 0.5)) - 1))
    return xs[k]


def stats(xs, timeouts):
    return {
        "n": len(xs),
        "timeouts": timeouts,
        "p50_ms": percentile(xs, 50),
        "p90_ms": percentile(xs, 90),
        "p99_ms": percentile(xs, 99),
        "max_ms": max(xs) if xs else None,
        "mean_ms": sum(xs) / len(xs) if xs else None,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--drop", required=True)
    ap.add_argument("--capture", required=True)
    ap.add_argument("--title", required=True)
    ap.add_argument("--drops", type=int, default=200)
    ap.add_argument("--gap-ms", type=int, default=50)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--webhook-port", type=int)
    ap.add_argument("--gzip", action="store_true")
    ap.add_argument("--out")
    a = ap.parse_args()

    if a.webhook_port:
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", a.webhook_port), Receiver)
        threading.Thread(target=srv.serve_forever, daemon=True).start()

    with open(a.capture, encoding="utf-8") as f:
        template = f.read()
    assert a.title in template, "title not in capture"
    u = urllib.parse.urlparse(a.base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    etag = None
    feed_ms, hook_ms, feed_timeouts, hook_timeouts = [], [], 0, 0
    hook_dead = False
    for i in range(a.drops):
        token = secrets.token_hex(6)
        title = f"Latency probe {i} {token}"
        body = template.replace(a.title, title, 1)
        name = f"probe-{i:05d}-{token}.txt"
        tmp = os.path.join(a.drop, "." + name + ".part")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(body)
        with arrivals_lock:
            pending.add(token)
        t0 = time.monotonic()
        os.rename(tmp, os.path.join(a.drop, name))
        got = None
        while time.monotonic() - t0 < a.timeout:
            headers = {"If-None-Match": etag} if etag else {}
            if a.gzip:
                headers["Accept-Encoding"] = "gzip"
            conn.request("GET", "/feed.xml", headers=headers)
            r = conn.getresponse()
            data = r.read()
            # The feed is served when its last byte arrived; decoding it (a few ms in
            # Python for 1 MB) is the client's time, not the server's.
            arrived = time.monotonic()
            if r.status == 200:
                etag = r.getheader("etag")
                if a.gzip:
                    assert r.getheader("content-encoding") == "gzip", "asked for gzip, got identity"
                    data = gzip.decompress(data)
                if title.encode() in data:
                    got = arrived
                    break
            time.sleep(0.001)
        if got is None:
            feed_timeouts += 1
        else:
            feed_ms.append((got - t0) * 1000)
        if a.webhook_port and not hook_dead:
            deadline = t0 + a.timeout
            while time.monotonic() < deadline:
                with arrivals_lock:
                    if token in arrivals:
                        break
                time.sleep(0.002)
            with arrivals_lock:
                at = arrivals.get(token)
                pending.discard(token)
            if at is None:
                hook_timeouts += 1
                # Three silent drops in a row at the start: no delivery wired; stop waiting.
                if not hook_ms and hook_timeouts >= 3:
                    hook_dead = True
            else:
                hook_ms.append((at - t0) * 1000)
        time.sleep(a.gap_ms / 1000.0)
    result = {"feed": stats(feed_ms, feed_timeouts)}
    if a.webhook_port:
        result["webhook"] = stats(hook_ms, hook_timeouts)
        result["webhook"]["measurable"] = bool(hook_ms)
    text = json.dumps(result, indent=1)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
