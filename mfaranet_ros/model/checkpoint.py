"""Checkpoint formats: the project's own, the official release, the ImageNet backbone.

Every file is read with ``torch.load(weights_only=True)``: a checkpoint is untrusted
input. Loading is strict: every tensor in the file must be consumed and every
parameter filled, or a :class:`CheckpointError` lists the missing, unexpected and
mis-shaped keys.
"""
from __future__ import annotations

import hashlib
import logging
import os
import pickle
import re
import zipfile
from typing import Dict, List, Mapping, Optional, Tuple, Union

import torch
from torch import nn

from .metadata import ModelMetadata, cityscapes_metadata
from .mfaranet import MFARANet

__all__ = [
    "CheckpointError",
    "FORMAT_TAG",
    "LoadedCheckpoint",
    "read_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
    "official_to_project_keys",
    "load_backbone",
    "import_official",
    "file_sha256",
]

log = logging.getLogger(__name__)

FORMAT_TAG = "mfaranet_ros/checkpoint/v1"
PathLike = Union[str, os.PathLike]


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used, with the reason and how to fix it."""


# --------------------------------------------------------------------------- reading

def _load_weights_only(path: PathLike) -> object:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path!r}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, RuntimeError, ValueError,
            AttributeError, TypeError, OSError) as exc:
        raise CheckpointError(
            f"{path!r} is not a readable PyTorch checkpoint (truncated, corrupt, or not a "
            f"checkpoint at all; only weights_only-safe files are accepted): "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None


def file_sha256(path: PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------- official -> project keys

# Official module names (model_MFARANet.py) -> ours. Index lists are in the official
# ModuleList order; each entry names the scale our ModuleDict keys it by. The orders
# (and that channel_change1 reduces the coarse input) were established against the
# official reference outputs (docs/model.md, the parity proof): any other assignment of
# these same-shaped tensors loads "strictly" yet computes something else.
_OFFICIAL_RULES: List[Tuple[str, str]] = [
    (r"^layer0\.0\.(\d+)\.", r"encoder.conv1.\1."),
    (r"^layer0\.1\.", "encoder.bn1."),
    (r"^(layer[1-4])\.", r"encoder.\1."),
]
_TOP_DOWN = ("s1", "s2", "s3")      # feature_fuses_up.i: T1, T2, T3
_BOTTOM_UP = ("s2", "s3", "s4")     # feature_fuses_down.i: B2, B3, B4
_MERGE = ("s2", "s3")               # stage_fuses.i: F2, F3
_FLOWS = ("s1", "s2", "s3")         # stages_offset.i: G1, G2, G3
_FLOW_PARTS = {"channel_change1": "reduce_coarse", "channel_change2": "reduce_fine",
               "offset_map": "flow"}


def _map_official_key(key: str) -> Optional[str]:
    for pattern, repl in _OFFICIAL_RULES:
        if re.match(pattern, key):
            return re.sub(pattern, repl, key)
    m = re.match(r"^(\w+?)\.(\d+)\.(.*)$", key)
    if not m:
        return None
    group, idx, rest = m.group(1), int(m.group(2)), m.group(3)
    try:
        if group == "channel_changes":
            return f"aggregation.lateral.s{idx + 1}.{rest}"
        if group == "feature_fuses_up":
            return f"aggregation.top_down.{_TOP_DOWN[idx]}.{rest}"
        if group == "feature_fuses_down":
            return f"aggregation.bottom_up.{_BOTTOM_UP[idx]}.{rest}"
        if group == "stage_fuses":
            return f"aggregation.merge.{_MERGE[idx]}.{rest}"
        if group == "stages_offset":
            part, _, tail = rest.partition(".")
            return f"alignment.flows.{_FLOWS[idx]}.{_FLOW_PARTS[part]}.{tail}"
        if group == "multi_loss_head":
            return f"heads.classifiers.s{idx + 1}.{rest[2:]}" if rest.startswith("0.") else None
        if group == "HMSA_attentions":
            return f"fusion.attention.s{idx + 1}.{rest}"
        if group == "boundary_heads":
            return f"boundary.heads.s{idx + 1}.{rest[2:]}" if rest.startswith("0.") else None
    except (IndexError, KeyError):
        return None
    return None


def official_to_project_keys(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Renames an official MFARANet state dict (``module.`` prefix optional) to ours.

    A key that no rule knows is kept under its original name, so the strict load
    reports it as unexpected instead of it vanishing.
    """
    out: Dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        bare = key.removeprefix("module.")
        out[_map_official_key(bare) or key] = value
    return out


def _looks_official(state_dict: Mapping[str, torch.Tensor]) -> bool:
    return any(k.removeprefix("module.").startswith(("layer0.", "channel_changes."))
               for k in state_dict)


# --------------------------------------------------------------------------- strict load

def _pruned_away(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> List[str]:
    """Keys of a whole checkpoint that belong to modules a pruned model does not build:
    those of the unpruned architecture that the pruned graph lacks."""
    if not getattr(model, "pruned", False):
        return []
    with torch.device("meta"):
        whole = MFARANet(model.num_classes, architecture=model.architecture,
                         boundary_heads=True, use_dilation=model.encoder.use_dilation)
    removed = set(whole.state_dict()) - set(model.state_dict())
    return [k for k in state_dict if k in removed]


def load_state_dict_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor],
                           source: str = "checkpoint") -> None:
    """``load_state_dict`` that fails with every missing, unexpected and mis-shaped key."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    misshaped = sorted(
        f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state_dict)
        if tuple(own[k].shape) != tuple(state_dict[k].shape)
    )
    if missing or unexpected or misshaped:
        def fmt(name: str, items: List[str]) -> str:
            more = f", ... ({len(items)} in all)" if len(items) > 12 else ""
            head = ", ".join(items[:12]) + more
            return f"\n  {name} ({len(items)}): {head}" if items else ""
        raise CheckpointError(
            f"{source} does not fit the model ({type(model).__name__}, "
            f"num_classes={getattr(model, 'num_classes', '?')})."
            + fmt("missing", missing) + fmt("unexpected", unexpected)
            + fmt("mis-shaped", misshaped)
            + "\nCheck that the file is an MFARANet checkpoint with the same number of classes; "
              "convert official checkpoints with `mfaranet import-official`."
        )
    model.load_state_dict(state_dict, strict=True)


# -------------------------------------------------------------------------- public API

class LoadedCheckpoint:
    """The content of a checkpoint file, normalised to the project's key names."""

    def __init__(self, state_dict: Dict[str, torch.Tensor], metadata: ModelMetadata,
                 model_config: Dict, kind: str, extra: Optional[Dict] = None) -> None:
        self.state_dict = state_dict
        self.metadata = metadata
        self.model_config = model_config
        self.kind = kind  # "project" or "official"
        self.extra = extra or {}


def _num_classes_of(state_dict: Mapping[str, torch.Tensor]) -> int:
    for key in (f"heads.classifiers.{s}.weight" for s in ("s2", "s1", "s3", "s4")):
        if key in state_dict:
            return int(state_dict[key].shape[0])
    raise CheckpointError("cannot tell the number of classes: no classifier weights in the file")


def read_checkpoint(path: PathLike) -> LoadedCheckpoint:
    """Reads a project or official checkpoint without building a model."""
    obj = _load_weights_only(path)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{os.fspath(path)!r} holds a {type(obj).__name__}, "
                              f"not a checkpoint dict")
    if obj.get("format") == FORMAT_TAG:
        try:
            meta = ModelMetadata.from_dict(obj["metadata"])
            state = dict(obj["state_dict"])
            config = dict(obj.get("model_config", {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"{os.fspath(path)!r}: malformed project checkpoint: {exc}") from None
        return LoadedCheckpoint(state, meta, config, "project",
                                {k: v for k, v in obj.items() if k not in ("state_dict",)})
    if "state_dict" in obj and isinstance(obj["state_dict"], dict):
        state = obj["state_dict"]
    elif obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state = obj  # a bare state dict
    else:
        raise CheckpointError(
            f"{os.fspath(path)!r} is neither a project checkpoint (format {FORMAT_TAG!r}) nor an "
            f"official one (dict with 'state_dict'); top-level keys: {sorted(map(str, obj))[:10]}"
        )
    if not _looks_official(state):
        raise CheckpointError(
            f"{os.fspath(path)!r}: state_dict keys look like neither MFARANet layout "
            f"(first keys: {list(state)[:5]})"
        )
    state = official_to_project_keys(state)
    n = _num_classes_of(state)
    source = f"official:{os.path.basename(os.fspath(path))}"
    if n == 19:
        meta = cityscapes_metadata(source=source)
    else:
        palette = [[(37 * i) % 256, (91 * i) % 256, (173 * i) % 256] for i in range(n)]
        meta = ModelMetadata(class_names=[f"class_{i}" for i in range(n)], palette=palette,
                             source=source)
    config = {"num_classes": n, "boundary_heads": any(k.startswith("boundary.") for k in state)}
    extra = {"epoch": obj.get("epoch")} if "epoch" in obj else {}
    return LoadedCheckpoint(state, meta, config, "official", extra)


def build_model_for(ckpt: LoadedCheckpoint, pruned: bool = False) -> MFARANet:
    """The model a checkpoint's weights fit: its classes, build options and architecture."""
    n = ckpt.metadata.num_classes
    if ckpt.model_config.get("num_classes", n) != n or _num_classes_of(ckpt.state_dict) != n:
        raise CheckpointError(
            f"metadata lists {n} classes but the classifier weights have "
            f"{_num_classes_of(ckpt.state_dict)}"
        )
    arch = ckpt.metadata.model_architecture()
    if pruned:
        try:
            arch.pruned()
        except ValueError as exc:
            raise CheckpointError(str(exc)) from None
    return MFARANet(
        num_classes=n,
        architecture=arch,
        pruned=pruned,
        boundary_heads=bool(ckpt.model_config.get("boundary_heads", True)),
        use_dilation=bool(ckpt.model_config.get("use_dilation", True)),
    )


def load_checkpoint(path: PathLike, *, pruned: bool = False,
                    device: Union[str, torch.device] = "cpu", return_metadata: bool = False):
    """Builds MFARANet from a project or official checkpoint, strictly, in eval mode.

    Returns the model (``(N,3,H,W)`` normalised input -> ``(N,C,H,W)`` logits), or
    ``(model, metadata)`` with ``return_metadata=True``. The architecture (which variant
    of each part) is the one the metadata records. With ``pruned=True`` the branch-2
    graph is built and the tensors of the modules it drops are discarded by name;
    everything else must match exactly.
    """
    ckpt = read_checkpoint(path)
    model = build_model_for(ckpt, pruned=pruned)
    state = dict(ckpt.state_dict)
    for key in _pruned_away(model, state):
        del state[key]
    load_state_dict_strict(model, state, source=repr(os.fspath(path)))
    model.to(device).eval()
    model.metadata = ckpt.metadata  # type: ignore[attr-defined]
    return (model, ckpt.metadata) if return_metadata else model


def save_checkpoint(path: PathLike, model: nn.Module, metadata: ModelMetadata,
                    extra: Optional[Dict] = None, half: bool = False) -> None:
    """Writes the project's format: weights, metadata and the model's build options.

    ``half=True`` stores floating-point tensors as fp16 (loading casts them back).
    """
    if getattr(model, "pruned", False):
        raise ValueError("save the full model; the pruned graph is derived at load time")
    state = {k: (v.detach().half() if half and v.is_floating_point() else v.detach()).cpu().clone()
             for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT_TAG,
        "state_dict": state,
        "metadata": metadata.to_dict(),
        "model_config": {
            "num_classes": int(model.num_classes),
            "boundary_heads": model.boundary is not None,
            "use_dilation": model.encoder.use_dilation,
        },
    }
    arch = getattr(model, "architecture", None)
    if arch is not None and arch.to_dict() != metadata.architecture:
        # the metadata says what the weights are: the model's own architecture wins
        payload["metadata"]["architecture"] = arch.to_dict()
    if extra:
        payload.update(extra)
    tmp = f"{os.fspath(path)}.tmp"
    torch.save(payload, tmp)
    os.replace(tmp, path)


def import_official(src: PathLike, dst: PathLike, source: Optional[str] = None) -> ModelMetadata:
    """Converts an official (release-format) checkpoint to the project's format."""
    ckpt = read_checkpoint(src)
    if ckpt.kind != "official":
        raise CheckpointError(f"{os.fspath(src)!r} is already in the project's format")
    model = build_model_for(ckpt)
    load_state_dict_strict(model, ckpt.state_dict, source=repr(os.fspath(src)))
    meta = ckpt.metadata
    meta.source = source or (
        f"official MFARANet release checkpoint {os.path.basename(os.fspath(src))} "
        f"(sha256 {file_sha256(src)[:16]}, epoch {ckpt.extra.get('epoch')})")
    save_checkpoint(dst, model, meta)
    return meta


def load_backbone(model: MFARANet, path: PathLike) -> None:
    """Loads the ImageNet deep-stem file ``resnet18-deep-inplane128.pth`` into the encoder.

    The file's classifier (``fc.*``) is the only part it holds that the encoder has no
    use for; it is dropped by name. Everything else must match exactly.
    """
    obj = _load_weights_only(path)
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{os.fspath(path)!r} is not a backbone state dict")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    load_state_dict_strict(model.encoder, state, source=f"backbone {os.fspath(path)!r}")


def load_init_weights(model: MFARANet, path: PathLike) -> LoadedCheckpoint:
    """Loads a whole-model checkpoint (project or official format) to fine-tune from.

    The file must fit the model strictly, with one exception: a file saved without the
    training-only boundary heads leaves the model's (freshly initialised) ones as they
    are. fp16 files load like in ``load_checkpoint``: ``load_state_dict`` casts on copy.
    """
    ckpt = read_checkpoint(path)
    state = dict(ckpt.state_dict)
    if not any(k.startswith("boundary.") for k in state):
        state.update({k: v for k, v in model.state_dict().items() if k.startswith("boundary.")})
    load_state_dict_strict(model, state, source=f"init weights {os.fspath(path)!r}")
    return ckpt
