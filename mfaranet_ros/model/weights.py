"""Where weight files are found: the package's ``models/`` and the default demo weights."""
from __future__ import annotations

import os

__all__ = ["DEFAULT_WEIGHTS", "package_models_dir", "resolve_weights"]

#: The demo weights shipped in ``models/``; the node's, the demo's and the tools' default.
DEFAULT_WEIGHTS = "mfaranet_synthetic.pth"


def package_models_dir() -> str:
    """The package's ``models/``: the ament share dir when installed, else the source tree."""
    try:
        from ament_index_python.packages import get_package_share_directory
        return os.path.join(get_package_share_directory("mfaranet_ros"), "models")
    except (ImportError, LookupError, OSError, ValueError):
        # not installed through colcon (no AMENT_PREFIX_PATH, or not in it)
        pass
    return os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "models")


def resolve_weights(path: str = DEFAULT_WEIGHTS) -> str:
    """Absolute path of a weights file: a relative path is looked for in the package's
    ``models/`` first, then in the working directory."""
    path = os.path.expanduser(path or DEFAULT_WEIGHTS)
    if os.path.isabs(path):
        return path
    in_models = os.path.join(package_models_dir(), path)
    if os.path.exists(in_models) or not os.path.exists(path):
        return in_models
    return os.path.abspath(path)
