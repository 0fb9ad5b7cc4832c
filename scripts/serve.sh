#!/usr/bin/env bash
# Serve the router app on http://127.0.0.1:8000 (foreground; Ctrl-C stops it and its Ray cluster).
# Fresh machine: needs only the package registries. No API keys and no model downloads needed:
# the weak model is a tiny random Llama built locally (answers are noise), and without
# $OPENAI_API_KEY strong calls fall back to the weak model (see docs/serving.md).
# Extra arguments go to `serve run`, e.g. `bash scripts/serve.sh --address auto`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1}
# Ray 2.60 token auth, explicitly on (token in ~/.ray/auth_token, created on first start). The CLI
# needs the mode too: `RAY_AUTH_MODE=token serve status`. RAY_AUTH_MODE=disabled opts out.
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-token}
# Serve restarts an HTTP proxy that is not ready within 5 s (its default); on a small busy node
# start-up then fails with ActorDiedError. Give the proxy a minute.
export RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S=${RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S:-60}
rayroute build-weak-model --out models/tiny-llama   # no-op when already built
exec serve run serve_config.yaml "$@"
