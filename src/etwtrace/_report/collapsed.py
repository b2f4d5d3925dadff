"""Folded stacks, as Brendan Gregg's flamegraph.pl reads them (also inferno, speedscope).

One line per distinct stack: its frames' labels root first, separated by ";", a space and its
weight for one metric (options.metric, or the profile's first metric), summed over threads.
A ";" inside a label would split the frame, so it is written as ":"; line breaks as spaces.
"""


def escape(label):
    return label.replace(";", ":").replace("\r", " ").replace("\n", " ")


def chosen_metric(profile, options):
    metric = getattr(options, "metric", None)
    if metric:
        return metric
    metrics = profile.metrics
    return metrics[0] if metrics else "cpu"


def write(profile, out, options):
    metric = chosen_metric(profile, options)
    labels = [escape(frame.label) for frame in profile.frames]
    lines = []
    for stack, weight in profile.stack_weights(metric).items():
        frames = profile.stacks[stack]
        if weight <= 0 or not frames:
            continue
        lines.append(";".join(labels[f] for f in frames) + f" {weight}\n")
    lines.sort()
    out.write("".join(lines).encode("utf-8"))
