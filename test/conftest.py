"""Shared fixtures: the official reference data, tiny checkpoints, tmp dirs."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
REFERENCE_DIR = Path(os.environ.get(
    "MFARANET_REFERENCE_DIR", REPO.parent / "shared" / "reference" / "mfaranet_official"))


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not (REFERENCE_DIR / "release_format_checkpoint.pth").is_file():
        pytest.skip(f"official reference data not found at {REFERENCE_DIR} "
                    f"(set MFARANET_REFERENCE_DIR to its folder)")
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def official_checkpoint(reference_dir) -> Path:
    return reference_dir / "release_format_checkpoint.pth"


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A randomly initialised 19-class MFARANet in the project's format (seeded)."""
    from mfaranet_ros.model import MFARANet, cityscapes_metadata, save_checkpoint

    torch.manual_seed(0)
    model = MFARANet(19)
    path = tmp_path_factory.mktemp("ckpt") / "random19.pth"
    save_checkpoint(path, model, cityscapes_metadata(source="test: random init, seed 0"))
    return path


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` skip cleanly, saying why, where CUDA is not available."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (none here)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def inference_cache_dir(tmp_path_factory) -> Path:
    """One artifact cache (ONNX files) shared by the inference tests, so each export runs once."""
    return tmp_path_factory.mktemp("inference_cache")


@pytest.fixture(scope="session")
def varied_checkpoint(official_checkpoint, tmp_path_factory) -> Path:
    """Official reference weights with re-drawn classifiers: 18-19 classes per frame (parity)."""
    from inference_frames import make_varied_checkpoint

    path = tmp_path_factory.mktemp("varied") / "varied.pth"
    make_varied_checkpoint(official_checkpoint, path)
    return path


@pytest.fixture(scope="session")
def demo_weights() -> Path:
    """The shipped demo weights: meaningful labels on generated street scenes."""
    path = REPO / "models" / "mfaranet_synthetic.pth"
    if not path.is_file():
        pytest.skip(f"demo weights {path} not present")
    return path


@pytest.fixture(scope="session")
def low_precision_cache(tmp_path_factory) -> Path:
    """One artifact cache for the int8 / bf16 tests, so their common fp32 export runs once."""
    return tmp_path_factory.mktemp("low_precision_cache")
