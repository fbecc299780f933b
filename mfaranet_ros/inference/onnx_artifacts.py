"""The ONNX files both CPU runtimes run: the fp32 export, and calibrated int8 copies of it.

ONNX Runtime and OpenVINO compile the same files from the same cache; this module is the
one place that makes, keys, finds and verifies them:

- :func:`export_onnx` writes ``SegmentationGraph`` (uint8 NHWC in, labels [+ confidence]
  out) with the checkpoint's metadata and the cache key embedded in ``metadata_props``;
- :func:`fp32_onnx` gives the fp32 export for one input size, from the cache or exported
  now (and cached);
- :class:`Int8Recipe` is what differs between the runtimes' int8 (the cache name, what the
  key records, the quantizer, how a model is run for the accuracy check);
  :func:`int8_onnx` finds a calibrated artifact or calibrates one, and
  :func:`require_any_int8` refuses early when none exists.

Every file taken from the cache must carry, embedded, the key its manifest claims (a
manifest copied next to someone else's file is never trusted): an fp32 export is then made
again, an int8 one calibrated again when frames are given, else refused.

One ONNX file per network input size (static height and width, dynamic batch): the
flow-alignment grids then constant-fold, and the file is what an engine would be. The
bilinear flow warps are exported as gathers (:class:`.graph.GatherGridSample`) rather than
``GridSample``, whose CPU kernel was the network's hotspot; results are identical.
"""
from __future__ import annotations

import io
import json
import logging
import os
import time
import warnings
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import torch

from .backends.base import BackendUnavailable, ModelSource
from .cache import ARTIFACT_FORMAT, CacheDir, lookup, store
from .calibration import load_calibration
from .graph import GatherGridSample, SegmentationGraph
from .processing import letterbox_fill
from .quantize import accuracy_report, describe_accuracy

__all__ = ["OPSET", "INPUT", "LABELS", "CONFIDENCE", "FP32_ARTIFACT", "onnx_cache_key",
           "export_onnx", "fp32_onnx", "embed_props", "embedded_props", "model_bytes",
           "Int8Recipe", "int8_key", "int8_onnx", "require_any_int8", "find_calibrated",
           "missing_artifact_message"]

log = logging.getLogger(__name__)

#: GridSample exists from opset 16; 17 is the project's floor, 18 what we write.
OPSET = 18
INPUT, LABELS, CONFIDENCE = "pixels", "labels", "confidence"
META_PREFIX = "mfaranet_ros."
#: Cache name of the fp32 export (both runtimes compile it; bf16 on OpenVINO too).
FP32_ARTIFACT = "mfaranet-onnx"

#: An ONNX model as a runtime takes it: a file's path, or the serialized bytes when
#: nothing can be cached.
Model = object


# --------------------------------------------------------------------- fp32 export

def onnx_cache_key(source: ModelSource, height: int, width: int, precision: str,
                   confidence: bool) -> Dict:
    """Everything an exported file depends on."""
    import onnx
    try:
        import onnxscript
        onnxscript_version = onnxscript.__version__
    except ImportError:
        onnxscript_version = None
    return {
        "format": ARTIFACT_FORMAT,
        "artifact": "onnx",
        "checkpoint_sha256": source.sha256,
        "pruned": source.pruned,
        "input_hw": [int(height), int(width)],
        "batch": "dynamic",
        "precision": precision,
        "outputs": [LABELS, CONFIDENCE] if confidence else [LABELS],
        "opset": OPSET,
        "grid_sample": "gather",  # see graph.gather_grid_sample
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxscript": onnxscript_version,
    }


@contextmanager
def _quiet_loggers(names=("torch.onnx", "onnx_ir", "onnxscript")):
    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in names]
    for logger, _ in saved:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in saved:
            logger.setLevel(level)


def embed_props(proto, props: Dict[str, str]) -> None:
    """Sets ``mfaranet_ros.<name>`` entries of an ``onnx.ModelProto``'s metadata_props."""
    wanted = {META_PREFIX + k: v for k, v in props.items()}
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key not in wanted]
    del proto.metadata_props[:]
    for k, v in [*kept, *wanted.items()]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v


def embedded_props(path: Path) -> Dict[str, str]:
    """The ``mfaranet_ros.<name>`` metadata of an ONNX file, by name."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key[len(META_PREFIX):]: p.value for p in proto.metadata_props
            if p.key.startswith(META_PREFIX)}


def _verified(path: Optional[Path], key: Dict,
              why: str) -> Tuple[Optional[Path], Dict[str, str], str]:
    """A cache hit checked against its embedded key: ``(path, its props, why)``, or
    ``(None, {}, the reason)`` for a file that does not carry the key its manifest claims
    (a manifest copied next to someone else's file is never trusted)."""
    if path is None:
        return None, {}, why
    props = embedded_props(path)
    try:
        carried = json.loads(props.get("cache_key", "null"))
    except ValueError:
        carried = None
    if carried != key:
        log.warning("ONNX model %s does not carry the key its manifest claims; not using it",
                    path)
        return None, {}, f"{path.name} does not carry the key its manifest claims"
    return path, props, why


def export_onnx(source: ModelSource, height: int, width: int, confidence: bool,
                key: Dict) -> bytes:
    """Exports ``SegmentationGraph``: uint8 NHWC in, uint8 labels [+ float confidence] out.

    Two files per size: ONNX Runtime computes every node of a graph even when only some
    outputs are fetched, and the softmax for the confidence costs ~5 % of the model.
    """
    import onnx

    meta = source.metadata
    graph = SegmentationGraph(source.load_model(), meta.mean, meta.std,
                              confidence=confidence).eval()
    outputs = [LABELS, CONFIDENCE] if confidence else [LABELS]
    example = torch.zeros((2, height, width, 3), dtype=torch.uint8)
    batch = torch.export.Dim("batch", min=1, max=256)
    # The exporter narrates on stdout and logs every optimisation pass: keep it quiet.
    # GatherGridSample: the flow warps as row gathers, ~2x faster than ORT's CPU GridSample.
    with warnings.catch_warnings(), redirect_stdout(io.StringIO()), _quiet_loggers(), \
            GatherGridSample():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            graph, (example,), None, dynamo=True, opset_version=OPSET, verbose=False,
            input_names=[INPUT], output_names=outputs,
            dynamic_shapes={"pixels": {0: batch}}, external_data=False,
        )
    proto = program.model_proto
    described = f"{LABELS}: (B, {height}, {width}) uint8 trainIds"
    if confidence:
        described += f"; {CONFIDENCE}: (B, {height}, {width}) float32 max softmax"
    del proto.metadata_props[:]
    embed_props(proto, {
        "metadata": json.dumps(meta.to_dict(), sort_keys=True),
        "cache_key": json.dumps(key, sort_keys=True),
        "input": f"{INPUT}: (B, {height}, {width}, 3) uint8 RGB 0..255 (normalised inside)",
        "outputs": described,
        "source_checkpoint": os.path.basename(source.path),
    })
    proto.producer_name = "mfaranet_ros"
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def fp32_onnx(source: ModelSource, cache: CacheDir, height: int, width: int,
              confidence: bool) -> Tuple[Model, Optional[Path]]:
    """The fp32 export for this input size: ``(model, cached file or None)``.

    From the cache when a verified entry exists, else exported now (a few seconds to a
    minute) and stored; kept in memory when the cache directory is not writable.
    """
    key = onnx_cache_key(source, height, width, "fp32", confidence)
    path, why = lookup(cache.readable, FP32_ARTIFACT, key, "onnx")
    path, _, why = _verified(path, key, why)
    if path is not None:
        log.debug("using cached ONNX model %s", path)
        return str(path), path
    where = cache.path or "memory (cache directory not writable)"
    log.info("exporting %s to ONNX for %dx%d input%s (%s), this takes a few seconds to a "
             "minute; cached at %s", source.describe(), height, width,
             " with confidence" if confidence else "", why, where)
    t0 = time.perf_counter()
    blob = export_onnx(source, height, width, confidence, key)
    if cache.path is None:
        log.info("exported in %.1f s (kept in memory)", time.perf_counter() - t0)
        return blob, None
    path = store(cache.path, FP32_ARTIFACT, key, "onnx", lambda p: p.write_bytes(blob))
    log.info("exported in %.1f s: %s", time.perf_counter() - t0, path)
    return str(path), path


def model_bytes(model: Model) -> bytes:
    """The serialized model, whether ``model`` is a path or bytes already."""
    return model if isinstance(model, bytes) else Path(model).read_bytes()


# --------------------------------------------------------------------- int8 (calibrated)

#: Runs an ONNX model (path or bytes) on a runtime: ``(1, H, W, 3)`` uint8 -> labels.
LabelRunner = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Int8Recipe:
    """What one runtime's int8 is; everything else about int8 is shared.

    ``key_fields()``: what the key records besides the fp32 export's (the recipe's name,
    the quantizer's version). ``quantize(fp32 proto, frames, num_classes)``: the int8
    ``onnx.ModelProto``. ``runner(model)``: the model run on this runtime in fp32
    arithmetic, for the accuracy check against the fp32 export.
    """

    backend: str
    artifact: str
    key_fields: Callable[[], Dict]
    quantize: Callable[..., object]
    runner: Callable[[Model], LabelRunner]


def int8_key(recipe: Int8Recipe, source: ModelSource, height: int, width: int,
             confidence: bool, calibration=None) -> Dict:
    """An int8 artifact's key: the fp32 export's, the recipe's fields and, when known, the
    calibration frames (hash and count; where they came from is metadata)."""
    key = onnx_cache_key(source, height, width, "int8", confidence)
    key.update(recipe.key_fields())
    if calibration is not None:
        key["calibration"] = {"sha256": calibration.sha256, "frames": len(calibration)}
    return key


def _manifest_keys(directory: Optional[Path], name: str):
    """The key of every manifest of cache entries ``name`` (unreadable ones skipped)."""
    if directory is None or not directory.is_dir():
        return
    for manifest in directory.glob(f"{name}-*.json"):
        try:
            key = json.loads(manifest.read_text()).get("key")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(key, dict):
            yield key


def find_calibrated(directory: Optional[Path], name: str, key: Dict,
                    ext: str) -> Tuple[Optional[Path], Optional[Dict], str]:
    """The newest valid cache entry whose key equals ``key`` in every field but
    ``calibration`` (the node does not know which frames an artifact was calibrated on).

    Returns ``(artifact, its full key, "")`` or ``(None, None, why not)``.
    """
    if directory is None or not directory.is_dir():
        return None, None, "no cache directory"
    found = []
    for recorded in _manifest_keys(directory, name):
        if "calibration" not in recorded:
            continue
        if {k: v for k, v in recorded.items() if k != "calibration"} != key:
            continue
        path, _why = lookup(directory, name, recorded, ext)  # hash-checked, or skipped
        if path is not None:
            found.append((path.stat().st_mtime, path, recorded))
    if not found:
        return None, None, f"no {name} entry for these settings in {directory}"
    _, path, recorded = max(found, key=lambda item: item[0])
    if len(found) > 1:
        log.info("%d calibrated artifacts match; using the newest, %s", len(found), path.name)
    return path, recorded, ""


def missing_artifact_message(backend: str, precision: str, weights: str,
                             size: Optional[Tuple[int, int]], cache_dir: Optional[Path],
                             why: str) -> str:
    """The one line a consumer (the node) shows when no calibrated artifact exists."""
    hw = f"{size[0]}x{size[1]}" if size else "HxW"
    at = f" at {hw}" if size else ""
    where = f" --cache-dir {cache_dir}" if cache_dir is not None else ""
    return (f"no {backend} {precision} artifact for {os.path.basename(weights)}{at} ({why}); "
            f"build one first: mfaranet build-engine --weights {weights} --backend {backend} "
            f"--input-size {hw} --precision {precision} "
            f"--calibration BAG|IMAGE_FOLDER|synthetic{where}")


def require_any_int8(recipe: Int8Recipe, source: ModelSource,
                     directory: Optional[Path]) -> None:
    """Refuses at construction, before any input size is known, when no int8 artifact of
    this checkpoint exists at all (the node then fails at start-up with the fix)."""
    if not any(key.get("checkpoint_sha256") == source.sha256
               for key in _manifest_keys(directory, recipe.artifact)):
        raise BackendUnavailable(missing_artifact_message(
            recipe.backend, "int8", source.path, None, directory, "none was built"))


def _log_loaded(recipe: Int8Recipe, path: Path, props: Dict[str, str]) -> None:
    accuracy = props.get("accuracy")
    log.info("%s int8 model %s, calibrated on %s: %s", recipe.backend, path.name,
             props.get("calibration", "?"),
             describe_accuracy(json.loads(accuracy)) if accuracy else "accuracy not recorded")


def int8_onnx(recipe: Int8Recipe, source: ModelSource, cache: CacheDir, height: int,
              width: int, confidence: bool, calibration=None) -> Tuple[Model, Optional[Path]]:
    """The int8 model for this size: ``(model, cached file or None)``.

    With ``calibration`` (a :class:`.calibration.CalibrationSpec`): the artifact of those
    frames, calibrated now unless cached. Without: the newest cached one for this
    checkpoint, size and recipe, or :class:`BackendUnavailable` saying how to build one.
    """
    directory = cache.readable
    if calibration is None:
        base = int8_key(recipe, source, height, width, confidence)
        path, key, why = find_calibrated(directory, recipe.artifact, base, "onnx")
        path, props, why = _verified(path, key, why)
        if path is None:
            raise BackendUnavailable(missing_artifact_message(
                recipe.backend, "int8", source.path, (height, width), directory, why))
        _log_loaded(recipe, path, props)
        return str(path), path
    meta = source.metadata
    frames, held = load_calibration(calibration, (height, width), letterbox_fill(meta.mean))
    key = int8_key(recipe, source, height, width, confidence, frames)
    path, why = lookup(directory, recipe.artifact, key, "onnx")
    path, props, why = _verified(path, key, why)
    if path is not None:
        _log_loaded(recipe, path, props)
        return str(path), path
    return _calibrate(recipe, source, cache, height, width, confidence, calibration, frames,
                      held, key, why)


def _calibrate(recipe: Int8Recipe, source: ModelSource, cache: CacheDir, height: int,
               width: int, confidence: bool, spec, frames, held, key: Dict,
               why: str) -> Tuple[Model, Optional[Path]]:
    import onnx

    num_classes = source.metadata.num_classes
    fp32_model, _ = fp32_onnx(source, cache, height, width, confidence)
    fp32_proto = onnx.load_from_string(model_bytes(fp32_model))
    log.info("calibrating %s int8 for %dx%d on %s (%s)", recipe.backend, height, width,
             frames.source, why)
    t0 = time.perf_counter()
    proto = recipe.quantize(fp32_proto, frames, num_classes)
    accuracy = accuracy_report(recipe.runner(fp32_model),
                               recipe.runner(proto.SerializeToString()),
                               held, num_classes, spec.miou)
    log.info("%s int8 calibrated in %.1f s: %s", recipe.backend, time.perf_counter() - t0,
             describe_accuracy(accuracy))
    embed_props(proto, {"cache_key": json.dumps(key, sort_keys=True),
                        "accuracy": json.dumps(accuracy, sort_keys=True),
                        "calibration": frames.source})
    blob = proto.SerializeToString()
    if cache.path is None:
        return blob, None
    path = store(cache.path, recipe.artifact, key, "onnx", lambda p: p.write_bytes(blob))
    return str(path), path

