#!/usr/bin/env bash
# The whole test suite (called by `make test` with the env's bin folder):
#   1. nbdev_export, nbdev_clean and the README generation leave the tree unchanged;
#   2. nbdev_test over every library notebook (cells flagged slow/gpu are skipped);
#   3. pytest tests/.
set -euo pipefail
BIN="$1"
export PATH="$BIN:$PATH" DVC_NO_ANALYTICS=1 MPLBACKEND=Agg
cd "$(dirname "$0")/.."
t0=$(date +%s)

snapshot() { git status --porcelain --untracked-files=all -- nbs avsoundscape README.md; git diff -- nbs avsoundscape README.md; }
before="$(snapshot)"
nbdev_export
nbdev_clean
nbdev_clean --fname nbs/pipeline
jupyter nbconvert --log-level WARN --to markdown --output-dir . --output README nbs/index.ipynb
after="$(snapshot)"
if [[ "$before" != "$after" ]]; then
  echo "FAIL: nbdev_export / nbdev_clean / README generation changed the tree; run them and commit:" >&2
  diff <(echo "$before") <(echo "$after") | head -40 >&2
  exit 1
fi
echo "export/clean check: clean ($(( $(date +%s) - t0 )) s)"

t1=$(date +%s)
nbdev_test --n_workers 2 --timing  # each notebook's time
echo "nbdev_test: passed ($(( $(date +%s) - t1 )) s)"

t2=$(date +%s)
python -m pytest tests -q -p no:cacheprovider --durations=0  # each test's time (setup included)
echo "pytest: $(( $(date +%s) - t2 )) s; whole suite: $(( $(date +%s) - t0 )) s"
