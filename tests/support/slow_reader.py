#!/usr/bin/env python3
"""Reads stdin like a slow consumer and prints what it got.

Reads at most --rate bytes per second for the first --slow-seconds (then as
fast as it can), and prints "<sha256> <bytes>" of the data. With --ndjson,
stdin is agentvmd's exec event stream: the stdout events' bytes are hashed
and the exit event's status is printed too ("<sha256> <bytes> <status>").
Used by the vm tier to check that a slow reader loses nothing.
"""
import argparse
import base64
import hashlib
import json
import sys
import time


def chunks(stream, rate, slow_seconds):
    start = time.monotonic()
    while True:
        elapsed = time.monotonic() - start
        if elapsed < slow_seconds:
            block = stream.read1(max(1, rate // 20))
            time.sleep(0.05)
        else:
            block = stream.read1(1 << 20)
        if not block:
            return
        yield block


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=1_000_000)
    parser.add_argument("--slow-seconds", type=float, default=0)
    parser.add_argument("--ndjson", action="store_true")
    args = parser.parse_args()
    digest = hashlib.sha256()
    total = 0
    status = None
    pending = b""
    for block in chunks(sys.stdin.buffer, args.rate, args.slow_seconds):
        if not args.ndjson:
            digest.update(block)
            total += len(block)
            continue
        pending += block
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if not line:
                continue
            event = json.loads(line)
            if event["type"] == "stdout":
                data = event["data"].encode() if "data" in event else base64.b64decode(event["data_b64"])
                digest.update(data)
                total += len(data)
            elif event["type"] == "exit":
                status = event["status"]
            elif event["type"] == "error":
                status = "error:" + event["error"]
    print(digest.hexdigest(), total, *([status] if args.ndjson else []))


if __name__ == "__main__":
    main()
