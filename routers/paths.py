"""The repository root, computed here and nowhere else, and the default folders found from it.

Relative paths in the configuration (checkpoints/, models/, serve_config.yaml) are relative to the
repository root, not to the working directory: Ray replicas run with another one.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_data_dir() -> Path:
    """``$RAYROUTE_DATA`` if set, else ``<repo>/../shared/data``."""
    env = os.environ.get("RAYROUTE_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"
