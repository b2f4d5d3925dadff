#!/bin/sh
# valgrind memcheck of one representative traced run: tests/stress/programs/generators.py
# (generators, send/throw/close, exceptions, garbage collection) under `python -m etwtrace`
# in instrumented and in stack mode. Any memcheck error fails (exit 1), and so does output
# that differs from the untraced run's.
# Usage: PYTHON=/path/to/venv/bin/python tests/valgrind/run.sh
# PYTHONMALLOC=malloc: memcheck sees every allocation (pymalloc's arenas would hide them).
# Use CPython 3.12 or later: 3.11 (and older) read an int's uninitialised digit for 0 in
# _PyLong_FromByteArray / PyLong_FromString, which memcheck reports in every program, traced
# or not; no suppression file is needed on 3.12+. --smc-check=all-non-file: stack mode writes
# its thunks (machine code) into memory at run time.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
program="$here/../stress/programs/generators.py"
if ! command -v valgrind >/dev/null 2>&1; then
    echo "tests/valgrind/run.sh: valgrind not found (apt-get install valgrind)" >&2
    exit 2
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/etwtrace-valgrind.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$(dirname "$program")"
"$python" "$program" > "$work/untraced.out" 2>&1 || echo "exit $?" >> "$work/untraced.out"
status=0
for mode in instrument stack; do
    mkdir "$work/$mode"
    ETWTRACE_TRACE_DIR="$work/$mode" JITDUMPDIR="$work/$mode" PYTHONMALLOC=malloc \
        valgrind --tool=memcheck --error-exitcode=99 --leak-check=no --smc-check=all-non-file \
        --log-file="$work/$mode.valgrind" \
        "$python" -m etwtrace --"$mode" --quiet -- "$program" > "$work/$mode.out" 2>&1 \
        || echo "exit $?" >> "$work/$mode.out"
    errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$work/$mode.valgrind" | tail -1)
    for pid_map in "$work/$mode"/jit-*.dump; do
        [ -e "$pid_map" ] || continue
        pid=${pid_map##*/jit-}; rm -f "/tmp/perf-${pid%.dump}.map"
    done
    if [ "${errors:-missing}" != 0 ]; then
        echo "valgrind memcheck, --$mode: ${errors:-no} errors" >&2
        cat "$work/$mode.valgrind" >&2
        status=1
    elif ! cmp -s "$work/untraced.out" "$work/$mode.out"; then
        echo "valgrind memcheck, --$mode: output differs from the untraced run" >&2
        diff "$work/untraced.out" "$work/$mode.out" >&2 || true
        status=1
    else
        echo "valgrind memcheck, --$mode: 0 errors, output as untraced"
    fi
done
exit $status
