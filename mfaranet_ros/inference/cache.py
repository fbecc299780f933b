"""The artifact cache: ONNX files and TensorRT programs, keyed by everything they depend on.

An entry is two files in the cache directory: ``<name>-<digest>.<ext>`` (the artifact)
and ``<name>-<digest>.json`` (its manifest: the full key and the artifact's sha256).
A lookup trusts an entry only if the manifest's key equals the wanted key field by
field and the artifact's hash matches; anything else (stale, foreign, truncated) is
reported and rebuilt, never loaded.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple, Union

from ..model.checkpoint import file_sha256

__all__ = [
    "ARTIFACT_FORMAT",
    "CacheDir",
    "default_cache_dir",
    "resolve_cache_dir",
    "checkpoint_sha256",
    "key_digest",
    "lookup",
    "store",
]

log = logging.getLogger(__name__)

#: Bump when the exported graph changes meaning (inputs, outputs, wrapper code).
ARTIFACT_FORMAT = "mfaranet_ros/artifact/v1"

PathLike = Union[str, os.PathLike]


def default_cache_dir() -> Path:
    """``$MFARANET_CACHE_DIR``, else ``$XDG_CACHE_HOME/mfaranet_ros``, else
    ``~/.cache/mfaranet_ros``."""
    env = os.environ.get("MFARANET_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "mfaranet_ros"


class CacheDir:
    """A resolved cache directory. ``path`` is None when nothing can be written (in-memory)."""

    def __init__(self, path: Optional[Path], requested: Path, reason: str = "") -> None:
        self.path = path
        self.requested = requested
        self.reason = reason

    @property
    def writable(self) -> bool:
        return self.path is not None

    @property
    def readable(self) -> Optional[Path]:
        """Where to look entries up: the cache, or an unwritable one that still exists."""
        if self.path is not None:
            return self.path
        return self.requested if self.requested.is_dir() else None

    def __repr__(self) -> str:
        return f"CacheDir({str(self.path) if self.path else 'in-memory'!r})"


def _probe_writable(path: Path) -> Optional[str]:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-", delete=True):
            pass
    except OSError as exc:
        return f"{type(exc).__name__}: {exc.strerror or exc}"
    return None


def resolve_cache_dir(cache_dir: Optional[PathLike] = None) -> CacheDir:
    """The cache directory to use; an unwritable one gives a warning, never an error.

    Entries already in an unwritable directory can still be read; new artifacts are
    then built in memory for this process only.
    """
    requested = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    problem = _probe_writable(requested)
    if problem is None:
        return CacheDir(requested, requested)
    log.warning("cache directory %s is not writable (%s): artifacts will be built in memory "
                "for this process and rebuilt next time; pass a writable cache_dir "
                "(or set MFARANET_CACHE_DIR) to keep them", requested, problem)
    return CacheDir(None, requested, problem)


_SHA_MEMO: Dict[Tuple[str, int, int], str] = {}


def checkpoint_sha256(path: PathLike) -> str:
    """sha256 of a checkpoint file, remembered per (path, size, mtime) within the process."""
    p = os.path.realpath(os.fspath(path))
    st = os.stat(p)
    memo_key = (p, st.st_size, st.st_mtime_ns)
    if memo_key not in _SHA_MEMO:
        _SHA_MEMO[memo_key] = file_sha256(p)
    return _SHA_MEMO[memo_key]


def key_digest(key: Dict) -> str:
    blob = json.dumps(key, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def entry_paths(directory: Path, name: str, key: Dict, ext: str) -> Tuple[Path, Path]:
    stem = f"{name}-{key_digest(key)}"
    return directory / f"{stem}.{ext}", directory / f"{stem}.json"


def _diff(want: Dict, have: Dict) -> str:
    fields = sorted(set(want) | set(have))
    diffs = [f"{f}: {have.get(f)!r} != {want.get(f)!r}"
             for f in fields if want.get(f) != have.get(f)]
    return "; ".join(diffs[:6]) + (" ..." if len(diffs) > 6 else "")


def lookup(directory: Optional[Path], name: str, key: Dict,
           ext: str) -> Tuple[Optional[Path], str]:
    """``(artifact path, "")`` for a valid entry, else ``(None, why not)``."""
    if directory is None:
        return None, "no cache directory"
    artifact, manifest = entry_paths(directory, name, key, ext)
    if not artifact.is_file() or not manifest.is_file():
        return None, f"no cached entry {artifact.name}"
    try:
        recorded = json.loads(manifest.read_text())
    except (OSError, ValueError) as exc:
        return None, f"unreadable manifest {manifest} ({exc})"
    if not isinstance(recorded, dict) or recorded.get("key") != key:
        have = recorded.get("key", {}) if isinstance(recorded, dict) else {}
        have = have if isinstance(have, dict) else {}
        return None, f"entry {artifact.name} was built for other settings ({_diff(key, have)})"
    if recorded.get("artifact_sha256") != file_sha256(artifact):
        return None, (f"entry {artifact.name} does not match its manifest's hash "
                      f"(truncated or replaced)")
    return artifact, ""


def store(directory: Path, name: str, key: Dict, ext: str,
          write: Callable[[Path], None]) -> Path:
    """Builds an entry with ``write(tmp_path)`` and publishes it atomically with its manifest."""
    artifact, manifest = entry_paths(directory, name, key, ext)
    # Keep the extension last: some writers (torch_tensorrt.save) choose the format by it.
    tmp = artifact.with_name(f".{artifact.stem}.{os.getpid()}.tmp{artifact.suffix}")
    try:
        write(tmp)
        digest = file_sha256(tmp)
        os.replace(tmp, artifact)
    finally:
        if tmp.exists():
            tmp.unlink()
    tmp_manifest = manifest.with_name(f".{manifest.name}.{os.getpid()}.tmp")
    tmp_manifest.write_text(json.dumps({"key": key, "artifact_sha256": digest}, indent=1,
                                       sort_keys=True))
    os.replace(tmp_manifest, manifest)
    return artifact
