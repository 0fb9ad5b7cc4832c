"""Run `rayroute train linear --labels STORE` as a Ray job (`ray job submit`'s API) on a local
cluster this script starts and stops (a driver holding the cluster, token auth with a run-only
token). What docs/learning.md reports as "tried on the local cluster".

    python scripts/learning_train_job.py LABEL_STORE OUT_DIR [DATA_DIR]

On a real cluster: ray job submit --working-dir . --runtime-env-json \
  '{"env_vars": {"RAYROUTE_DATA": "/shared/data"}}' -- python -m cli train linear --labels /shared/labels --out ...
"""

import os
import secrets
import sys
import time

os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)})
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ray  # noqa: E402
from ray.job_submission import JobSubmissionClient  # noqa: E402

from bench.fake_backends import free_port  # noqa: E402

store, out = sys.argv[1], sys.argv[2]
data = sys.argv[3] if len(sys.argv) > 3 else os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
port = free_port()
ray.init(num_cpus=2, include_dashboard=True, dashboard_port=port, log_to_driver=False)
try:
    t0 = time.time()
    client = JobSubmissionClient(f"http://127.0.0.1:{port}")
    entry = (f"{sys.executable} -m cli train linear --labels {store} --sources mt_bench,arc_challenge,mbpp "
             f"--embedder static --out {out}")
    job = client.submit_job(entrypoint=entry, runtime_env={
        "working_dir": repo, "excludes": ["docs/", "k8s/", ".git/"],
        "env_vars": {"PYTHONPATH": ".", "RAYROUTE_DATA": data, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}})
    print("submitted", job, entry, flush=True)
    while not (status := client.get_job_status(job)).is_terminal():
        time.sleep(2)
    print("status", status, "after", round(time.time() - t0, 1), "s")
    print(client.get_job_logs(job)[-3000:])
    sys.exit(0 if str(status).endswith("SUCCEEDED") else 1)
finally:
    ray.shutdown()
