"""Writes the file named by argv[1], so a test can tell whether the target ran at all."""
import sys

with open(sys.argv[1], "w") as f:
    f.write("ran\n")
