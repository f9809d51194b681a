#!/usr/bin/env bash
# scripts/readme-plot.sh [BUILD_DIR] - regenerate docs/demo.png, the
# picture in README.md: `labyrinth demo` for 10 s with the worker paused
# from 3 s to 5 s, so the reserve drains, atomic allocations fail cleanly,
# and everything recovers when the worker resumes.
# Needs gnuplot (Debian: gnuplot-nox; scripts/deps.sh test installs it).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
if ! command -v gnuplot >/dev/null 2>&1; then
  "$root/scripts/deps.sh" test || true
fi
command -v gnuplot >/dev/null 2>&1 || { echo "readme-plot: gnuplot is not installed (apt-get install gnuplot-nox)" >&2; exit 1; }
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" --target labyrinth >/dev/null
"$build/tools/labyrinth" demo --duration 10s --pause-worker 3s,2s --plot "$root/docs/demo.png" --quiet
echo "readme-plot: wrote docs/demo.png"
