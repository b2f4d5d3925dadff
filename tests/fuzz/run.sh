#!/bin/sh
# Builds the reader's libFuzzer target with clang (ASan + UBSan) and runs it briefly on the
# seed corpus. Usage: tests/fuzz/run.sh [seconds | -runs=N]   (default 45 s, at most 60 in CI)
# New inputs go to a scratch directory, never into the repository's corpus.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
seconds=${1:-${FUZZ_SECONDS:-45}}
case $seconds in
    -runs=*) budget=$seconds ;;
    *) budget=-max_total_time=$seconds ;;
esac
if [ -n "${FUZZ_WORK_DIR:-}" ]; then
    work=$FUZZ_WORK_DIR
    mkdir -p "$work"
else
    work=$(mktemp -d /tmp/etwtrace-fuzz.XXXXXX)
    trap 'rm -rf "$work"' EXIT
fi
cxx=${CLANGXX:-clang++}
if ! command -v "$cxx" >/dev/null 2>&1; then
    echo "run.sh: $cxx not found (apt-get install clang)" >&2
    exit 2
fi
"$cxx" -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$root/src/etwtrace/_native" \
    "$here/fuzz_reader.cpp" "$root/src/etwtrace/_native/reader/trace_reader.cpp" \
    "$root/src/etwtrace/_native/reader/trace_aggregate.cpp" \
    "$root/src/etwtrace/_native/reader/trace_stream.cpp" \
    -o "$work/fuzz_reader"
mkdir -p "$work/corpus"
cp "$here"/corpus/* "$work/corpus/"
cd "$work"
crashes=${FUZZ_ARTIFACTS:-/tmp/etwtrace-fuzz-crashes}
mkdir -p "$crashes"
"$work/fuzz_reader" "$budget" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$crashes/" \
    -print_final_stats=1 "$work/corpus"
echo "fuzz_reader: no crash ($budget)"
