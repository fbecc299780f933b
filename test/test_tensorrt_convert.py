"""The graph TensorRTBackend compiles converts, whole, into one TensorRT engine (no GPU needed).

Each case is a dry run of torch-tensorrt's own pipeline (lowering, partitioner, converter
registry with its validators) on the ExportedProgram the backend builds engines from: same
wrapper, dtypes, int32 labels, NHWC input. Only the engine build itself needs a GPU. On a
CPU-only torch, ``torch-tensorrt-rtx`` provides those sources (``scripts/test.sh`` installs
it) and ``tensorrt_cpu`` answers its device queries.

The cases are a pairwise design over the five settings (model, precision, batch, confidence,
input size): every pair of values of any two settings occurs in some case, in 6 dry runs
instead of 32 (each costs seconds of tracing; the pruned model is the cheaper one).
Convertibility does not depend on the weights: a random-init checkpoint does.
"""
from __future__ import annotations

import pytest
import torch
from tensorrt_cpu import import_torch_tensorrt, on_cpu

from mfaranet_ros.evaluation.build_engine import print_conversion_report
from mfaranet_ros.inference.backends import ModelSource
from mfaranet_ros.inference.backends.tensorrt_backend import EngineBuild
from mfaranet_ros.inference.backends.tensorrt_report import OpCoverage

# (pruned, precision, batch, confidence, (height, width)). Pairwise: the two full-model
# cases take opposite values of every other setting; the four pruned ones make up the other
# pairs. 90x150 is not a multiple of 32, like a 1080-row camera at full resolution.
CASES = [
    (False, "fp32", 1, False, (64, 128)),
    (False, "fp16", 4, True, (90, 150)),
    (True, "fp16", 4, False, (64, 128)),
    (True, "fp32", 1, True, (90, 150)),
    (True, "fp16", 1, True, (64, 128)),
    (True, "fp32", 4, False, (90, 150)),
]


def _case_id(case) -> str:
    pruned, precision, batch, confidence, (h, w) = case
    return (f"{'pruned' if pruned else 'full'}-{precision}-b{batch}"
            f"{'-conf' if confidence else ''}-{h}x{w}")


@pytest.fixture(scope="module")
def trt():
    try:
        return import_torch_tensorrt()
    except ModuleNotFoundError as exc:
        pytest.skip(f"torch-tensorrt is not installed ({exc}); bash scripts/test.sh installs "
                    f"torch-tensorrt-rtx for this check")


def _outputs(program: torch.export.ExportedProgram):
    """``[(dtype, shape)]`` of the program's outputs, from the exported graph's metadata."""
    (output,) = [n for n in program.graph.nodes if n.op == "output"]
    return [(v.meta["val"].dtype, tuple(v.meta["val"].shape)) for v in output.args[0]]


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_backend_graph_converts_into_one_engine(trt, tiny_checkpoint, case, capsys):
    pruned, precision, batch, confidence, (h, w) = case
    build = EngineBuild(ModelSource(tiny_checkpoint, pruned=pruned), batch, h, w, precision,
                        confidence, device="cpu")
    program = build.export()
    dtype = torch.float16 if precision == "fp16" else torch.float32
    (pixels,) = [n.meta["val"] for n in program.graph.nodes if n.op == "placeholder"
                 and n.name in program.graph_signature.user_inputs]
    assert (pixels.dtype, tuple(pixels.shape)) == (dtype, (batch, h, w, 3))
    expected = [(torch.int32, (batch, h, w))] + ([(torch.float32, (batch, h, w))] if confidence
                                                 else [])
    assert _outputs(program) == expected

    with on_cpu():
        report = build.dry_run(trt, program)
    detail = f"{report.summary()}\n{report.table()}\nleft to PyTorch: {report.left_to_torch}"
    assert report.convertible == report.total, detail
    assert report.engines == 1 and report.engine_ops == [report.total], detail
    assert report.left_to_torch == [], detail
    assert report.fully_converted
    # The network is all there: 56 convolutions in the full model, 36 in branch 2 alone.
    convolutions = sum(o.count for o in report.ops if o.op == "aten.convolution.default")
    assert convolutions == (36 if pruned else 56), detail
    assert "aten.grid_sampler_2d.default" in {o.op for o in report.ops}, detail
    # What `mfaranet build-engine --dry-run` prints for it, and its exit status.
    assert print_conversion_report(report) == 0
    out = capsys.readouterr().out
    assert report.table() in out and "ok: the whole graph converts into one TensorRT engine" in out


def test_an_unconvertible_op_fails_the_check(trt, tiny_checkpoint, capsys):
    """Negative control: an op without a converter, in the middle of the network."""
    build = EngineBuild(ModelSource(tiny_checkpoint, pruned=True), 1, 64, 128, "fp32", False,
                        device="cpu")
    graph = build.graph()
    graph.model.encoder.maxpool.register_forward_hook(
        lambda module, args, out: torch.special.erfcx(out))
    with on_cpu():
        report = build.dry_run(trt, build.export(graph))
    assert not report.fully_converted
    assert [o for o in report.ops if o.converter is None] == [
        OpCoverage("aten.special_erfcx.default", 1, None)]
    assert report.engines == 2 and report.convertible == report.total - 1
    assert len(report.left_to_torch) == 1 and "special_erfcx" in report.left_to_torch[0]
    assert print_conversion_report(report) == 1
    captured = capsys.readouterr()
    assert "special_erfcx" in captured.err and "(2 engines)" in captured.err
    assert "| `aten.special_erfcx.default` | 1 | **none: runs in PyTorch** |" in captured.out
