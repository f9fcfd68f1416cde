#!/usr/bin/env python3
"""Parses Prometheus text exposition (format 0.0.4) from stdin with prometheus_client's
parser and prints one JSON object: `name{label=value,...}` (labels sorted by name; just
`name` when a sample has none) -> the sample's value.

Values are JSON numbers; NaN and infinities, which JSON cannot hold, are the strings
"NaN", "+Inf" and "-Inf". Exits 1 with a message on stderr when the text does not parse
or holds the same series twice. Needs prometheus_client (scripts/lib/python.sh installs it).
"""

import json
import math
import sys


def series_key(name, labels):
    if not labels:
        return name
    return name + "{" + ",".join(f"{key}={labels[key]}" for key in sorted(labels)) + "}"


def json_value(value):
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return value


def main():
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError as error:
        print(f"parse_metrics: prometheus_client is not installed: {error}", file=sys.stderr)
        return 1
    text = sys.stdin.read()
    samples = {}
    try:
        # A generator: parse errors surface while iterating.
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key = series_key(sample.name, sample.labels)
                if key in samples:
                    raise ValueError(f"duplicate series {key}")
                samples[key] = json_value(float(sample.value))
    except Exception as error:  # the parser raises ValueError and others on bad input
        print(f"parse_metrics: invalid Prometheus text: {error}", file=sys.stderr)
        return 1
    json.dump(samples, sys.stdout, sort_keys=True, allow_nan=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
