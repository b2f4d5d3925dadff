"""Regex tokenizing and matching: re's C engine, with tuples and dicts built in Python."""

import re

TOKEN = re.compile(r"\s*(?:(\d+)|(\w+)|(.))")
ASSIGN = re.compile(r"(\w+)\s*=\s*(\w+)")


def tokenize(text):
    out = []
    for number, name, other in TOKEN.findall(text):
        out.append(("n", number) if number else ("w", name) if name else ("o", other))
    return out


def run(scale):
    text = "alpha = beta * 42 + gamma(7, delta) - 3 / epsilon; " * 200
    seen = {}
    for _ in range(max(1, int(12 * scale))):
        tokenize(text)
        for m in ASSIGN.finditer(text):
            seen[m.group(1)] = seen.get(m.group(1), 0) + 1
        re.sub(r"\d+", lambda m: str(int(m.group()) * 2), text)
    return seen
