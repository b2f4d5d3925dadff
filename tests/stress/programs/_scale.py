"""How big a stress program runs: CI size by default, ETWTRACE_STRESS=long for a soak."""
import os

LONG = os.environ.get("ETWTRACE_STRESS") == "long"


def scale(ci, long):
    return long if LONG else ci
