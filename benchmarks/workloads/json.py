"""JSON round trips of a nested document (the C encoder and decoder, plus Python glue)."""

import json as _json


def run(scale):
    doc = {"items": [{"id": i, "name": f"item{i}", "tags": ["a", "b", str(i)], "price": i * 1.5,
                      "nested": {"ok": i % 2 == 0, "ratio": i / 7}} for i in range(300)]}
    total = 0
    for _ in range(max(1, int(16 * scale))):
        text = _json.dumps(doc, sort_keys=True)
        total += len(_json.loads(text)["items"])
        total += len(_json.dumps(doc, indent=1))  # the pure-Python encoder path
    return total
