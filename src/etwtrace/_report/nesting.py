"""Timed spans of one thread made properly nested, for the formats that need it.

Speedscope's evented profiles and the Chrome trace format both require that the spans of a
thread nest: a span that starts inside another ends inside it too. Instrumented calls do nest,
but clocks read at entry and exit of different calls can disagree by a tick, and an off-CPU
span (a context switch) must sit inside the call it happened in. `nest` sorts the spans and
clamps each one to its enclosing span, so the writers never emit an unbalanced sequence, even
from a damaged trace.
"""


def nest(spans):
    """Properly nested spans from `(start, end, payload)` tuples of one thread.

    Returns a list of `(start, end, depth, payload)` in start order (outer spans first on a
    tie), with each end clamped to the end of the span enclosing it; a span ending before it
    starts is made empty. Sorting is the only cost beyond one pass: O(n log n).
    """
    ordered = sorted(spans, key=lambda span: (span[0], -span[1]))
    enclosing_ends = []
    nested = []
    for start, end, payload in ordered:
        while enclosing_ends and enclosing_ends[-1] <= start:
            enclosing_ends.pop()
        end = max(start, end)
        if enclosing_ends and end > enclosing_ends[-1]:
            end = enclosing_ends[-1]
        nested.append((start, end, len(enclosing_ends), payload))
        enclosing_ends.append(end)
    return nested


def open_close_events(spans):
    """Balanced `(kind, time, payload)` events, kind "open" or "close", from `nest(spans)`.

    Times never decrease, and each close matches the most recent open not yet closed; a span
    that ends when the next one starts is closed first.
    """
    events = []
    open_spans = []  # (end, payload), innermost last; ends never increase towards the top
    for start, end, _depth, payload in nest(spans):
        while open_spans and open_spans[-1][0] <= start:
            closed_end, closed = open_spans.pop()
            events.append(("close", closed_end, closed))
        events.append(("open", start, payload))
        open_spans.append((end, payload))
    while open_spans:
        closed_end, closed = open_spans.pop()
        events.append(("close", closed_end, closed))
    return events
