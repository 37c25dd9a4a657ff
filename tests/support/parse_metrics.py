#!/usr/bin/env python3
"""Parses Prometheus text exposition (the file named by argv[1]) with
prometheus_client's own parser and prints every sample as one JSON object:
{"name{label=\"value\",...}": value}, labels sorted. Exits non-zero if the
text does not parse, so a malformed /metrics fails the test that calls it."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        text = f.read()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            key = f"{sample.name}{{{labels}}}" if labels else sample.name
            samples[key] = sample.value
    json.dump(samples, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
