#!/usr/bin/env bash
# Installs what etwtrace's build, tests and captures need on Debian 12, idempotently, and
# mounts tracefs so the USDT probes can be recorded. Safe to run again.
set -euo pipefail

packages=(
  linux-perf          # perf record / inject / script
  systemtap-sdt-dev   # <sys/sdt.h>: the USDT probes
  libunwind-dev       # the sampler mode's native stacks (local unwinding in the signal handler)
  libgtest-dev        # GoogleTest for the C++ units
  g++ cmake ninja-build
  ccache              # the test run compiles sources shared by its six builds once
  clang               # libFuzzer for the trace-reader fuzz target
  valgrind            # callgrind instruction counts in benchmarks
  chromium            # headless browser: loads the report's HTML and SVG in the tests
  golang-go           # `go tool pprof` reads the report's pprof files in the tests
)

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: need root to install ${missing[*]} (run with sudo, or install them: apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# perf's USDT support reads probe definitions through tracefs.
if [[ ! -e /sys/kernel/tracing/uprobe_events ]]; then
  if [[ $(id -u) -eq 0 ]]; then
    mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || echo "setup: could not mount tracefs; USDT probes will not be recorded" >&2
  else
    echo "setup: tracefs is not mounted (as root: mount -t tracefs nodev /sys/kernel/tracing); USDT probes will not be recorded" >&2
  fi
fi
