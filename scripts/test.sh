#!/usr/bin/env bash
# Set everything up and run the whole test suite (unit + integration; gpu tests skip without CUDA).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/unit -x`.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export RAYROUTE_CACHE=${RAYROUTE_CACHE:-$PWD/.cache}
# Stop any Ray processes the tests started, even when they fail or are interrupted.
trap 'ray stop --force >/dev/null 2>&1 || true' EXIT
python -m pytest "$@"
rc=$?
# pytest exits 5 when it collected no tests (e.g. a filter matched none): not a failure here.
[ "$rc" -eq 5 ] && rc=0
exit "$rc"
