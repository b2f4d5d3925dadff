"""The benchmark programs, one module each with run(scale): scale 1.0 takes ~0.1-0.3 s untraced
on this machine's CPython 3.11; the suite's smallest configurations pass a small scale.

NAMES orders them as the tables print them."""

NAMES = ["fib", "objects", "richards", "nbody", "deltablue", "raytrace", "json", "regex", "cext",
         "threaded", "asyncio"]

KINDS = {
    "fib": "call-heavy",
    "objects": "object-heavy",
    "richards": "realistic",
    "nbody": "realistic",
    "deltablue": "realistic",
    "raytrace": "realistic",
    "json": "C extension",
    "regex": "C extension",
    "cext": "C extension",
    "threaded": "threads",
    "asyncio": "asyncio",
}
