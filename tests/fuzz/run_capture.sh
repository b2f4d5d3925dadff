#!/bin/sh
# Runs the capture reader's atheris target (fuzz_capture.py) on the seed corpus.
# Usage: tests/fuzz/run_capture.sh [seconds | -runs=N]   (default 20 s; CI runs it briefly)
# PYTHON: an interpreter with etwtrace and atheris installed (pip install atheris).
# New inputs go to a scratch directory, never into the repository's corpus; a crashing input
# is written to $FUZZ_ARTIFACTS (default /tmp/etwtrace-fuzz-crashes).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
case $python in */*) python=$(cd "$(dirname "$python")" && pwd)/$(basename "$python") ;; esac
limit=${1:-20}
case $limit in
    -runs=*) budget=$limit ;;
    *) budget=-max_total_time=$limit ;;
esac
if ! "$python" -c "import atheris, etwtrace" 2>/dev/null; then
    echo "run_capture.sh: $python lacks atheris or etwtrace (pip install atheris, and install etwtrace)" >&2
    exit 2
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/etwtrace-fuzz-capture.XXXXXX")
trap 'rm -rf "$work"' EXIT
crashes=${FUZZ_ARTIFACTS:-/tmp/etwtrace-fuzz-crashes}
mkdir -p "$crashes"
mkdir "$work/corpus"
cd "$work"
FUZZ_SCRATCH="$work/capture" "$python" "$here/fuzz_capture.py" "$budget" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$crashes/capture-" -print_final_stats=1 "$work/corpus" "$here/corpus-capture"
echo "fuzz_capture: no crash ($budget)"
