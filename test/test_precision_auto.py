"""``precision: auto``: the CPU matrix-unit detector, the rule on made-up capability sets,
and the rule on the machine the test runs on, with agreements measured on real backends.

The real runs use the demo weights at 64x128 on generated street scenes: a random-init
network's labels are near ties everywhere, so agreement there would mean nothing.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mfaranet_ros.inference.cpu_units import CpuUnits, detect_cpu_units, parse_cpuinfo
from mfaranet_ros.inference.precision_rule import (
    AGREEMENT_THRESHOLD,
    auto_order,
    choose_precision,
)
from mfaranet_ros.names import PRECISIONS, check_precision_name, check_precision_request

H, W = 64, 128

# /proc/cpuinfo excerpts (first processor's entry, flags shortened to what matters).
ZEN3 = ("processor\t: 0\nmodel name\t: AMD EPYC 7B13\n"
        "flags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2 sha_ni vaes\n")
ZEN4 = ("processor\t: 0\nmodel name\t: AMD EPYC 9554\nflags\t\t: sse2 avx avx2 fma avx512f "
        "avx512dq avx512bw avx512vl avx512_vnni avx512_bf16 avx512_vbmi2\n")
SAPPHIRE_RAPIDS = ("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t\t: "
                   "sse2 avx avx2 fma avx512f avx512bw avx_vnni avx512_vnni avx512_bf16 "
                   "amx_bf16 avx512_fp16 amx_tile amx_int8\n")
ALDER_LAKE = ("model name\t: 12th Gen Intel(R) Core(TM) i7-1255U\n"
              "flags\t\t: avx avx2 fma avx_vnni\n")
AARCH64 = ("processor\t: 0\nBogoMIPS\t: 50.00\n"
           "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics bf16 i8mm sve\n"
           "CPU implementer\t: 0x41\n")

AMX, AVX512_BF16, AVX2 = (parse_cpuinfo(t) for t in (SAPPHIRE_RAPIDS, ZEN4, ZEN3))
UNKNOWN = parse_cpuinfo(AARCH64)


# --------------------------------------------------------------------- the detector

@pytest.mark.parametrize("text,units,bf16", [
    (ZEN3, ("AVX2",), ()),
    (ALDER_LAKE, ("AVX2", "AVX-VNNI"), ()),
    (ZEN4, ("AVX2", "AVX-512", "AVX-512 VNNI", "AVX-512 BF16"), ("AVX-512 BF16",)),
    (SAPPHIRE_RAPIDS, ("AVX2", "AVX-VNNI", "AVX-512", "AVX-512 VNNI", "AVX-512 BF16",
                       "AMX-BF16", "AMX-INT8"), ("AMX-BF16", "AVX-512 BF16")),
])
def test_units_from_cpuinfo_flags(text, units, bf16):
    cpu = parse_cpuinfo(text)
    assert cpu.known and cpu.units == units and cpu.bf16_units == bf16
    assert cpu.model.startswith(("AMD", "Intel", "12th"))
    assert json.loads(json.dumps(cpu.as_dict()))["units"] == list(units)


def test_units_described_with_what_is_missing():
    assert AVX2.describe() == "AVX2 (no AVX-VNNI, AVX-512, AVX-512 VNNI, AVX-512 BF16, AMX)"
    assert AMX.describe().endswith("AMX-BF16, AMX-INT8")   # nothing missing
    assert "(no AVX-VNNI, AMX)" in AVX512_BF16.describe()


def test_units_unknown_where_the_kernel_lists_no_x86_flags(tmp_path):
    assert not UNKNOWN.known and not UNKNOWN.units and not UNKNOWN.bf16_units
    assert UNKNOWN.describe().startswith("unknown (") and "aarch64" in UNKNOWN.describe()
    missing = detect_cpu_units(str(tmp_path / "cpuinfo"))     # e.g. macOS: no /proc/cpuinfo
    assert not missing.known and "unreadable" in missing.describe()


def test_units_of_this_machine_agree_with_openvino():
    """The detector's bf16 reading against OpenVINO's own probe of the CPU (cpuid)."""
    ov = pytest.importorskip("openvino", reason="needs openvino for the second opinion")
    cpu = detect_cpu_units()
    if not cpu.known:
        pytest.skip(f"this machine's units are {cpu.describe()}")
    caps = list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    if cpu.bf16_units:   # (OpenVINO may also list BF16 for AVX-NE-CONVERT CPUs: one way)
        assert "BF16" in caps, (cpu.describe(), caps)
    if "BF16" not in caps:
        assert not cpu.bf16_units, (cpu.describe(), caps)


# --------------------------------------------------------------------- the rule

@pytest.mark.parametrize("units,gpu,backend,measured,chosen", [
    # the fastest candidate that passes, even where a slower one agrees more
    (AMX, False, "auto", {"bf16": 0.996, "int8": 0.999}, "bf16"),
    (AMX, False, "auto", {"bf16": 0.990, "int8": 0.997}, "int8"),
    (AMX, False, "auto", {"bf16": 0.990, "int8": "no int8 artifact"}, "fp32"),
    (AVX512_BF16, False, "auto", {"bf16": 0.9951}, "bf16"),
    # the threshold is inclusive
    (AVX2, False, "auto", {"int8": AGREEMENT_THRESHOLD}, "int8"),
    (AVX2, False, "auto", {"int8": AGREEMENT_THRESHOLD - 1e-6}, "fp32"),
    # bf16 only where the CPU has units for it, whatever was measured
    (AVX2, False, "auto", {"bf16": 1.0}, "fp32"),
    (UNKNOWN, False, "auto", {"bf16": 1.0, "int8": 0.999}, "int8"),
    # never assumed: a candidate not measured is not chosen
    (AMX, False, "auto", {}, "fp32"),
    # a named backend offers only what it runs
    (AMX, False, "onnxruntime", {"bf16": 1.0, "int8": 0.998}, "int8"),
    (AMX, False, "torch", {"bf16": 1.0, "int8": 1.0}, "fp32"),
    # a GPU: fp16 under the same rule; the CPU's precisions are not candidates there
    (AMX, True, "auto", {"fp16": 0.999, "bf16": 1.0}, "fp16"),
    (AVX2, True, "torch", {"fp16": 0.99}, "fp32"),
    (AVX2, True, "onnxruntime", {"fp16": 1.0}, "fp32"),
])
def test_rule_on_made_up_machines(units, gpu, backend, measured, chosen):
    choice = choose_precision(units, gpu, measured, backend=backend)
    assert choice.precision == chosen
    value = measured.get(chosen)
    assert choice.agreement == (None if chosen == "fp32" else value)
    assert [t.precision for t in choice.trials if t.outcome == "chosen"] == [chosen]
    json.dumps(choice.as_dict())                # reports and diagnostics take it as is
    assert f"auto chose {chosen}" in choice.describe()


def test_rule_says_why_each_precision_was_not_chosen():
    trials = {t.precision: t for t in choose_precision(
        AMX, False, {"bf16": 0.99}, notes={"bf16": "openvino: 99.00 % on the probe"}).trials}
    assert trials["bf16"].outcome == "rejected" and trials["bf16"].agreement == 0.99
    assert "99.00 % labels as fp32 (openvino: 99.00 % on the probe), < 99.5 %" in \
        trials["bf16"].reason and "AMX-BF16" in trials["bf16"].reason
    assert trials["int8"].outcome == "skipped" and "not measured" in trials["int8"].reason
    assert trials["fp32"].outcome == "chosen"
    skipped = {t.precision: t for t in choose_precision(AVX2, False, {}).trials}
    assert skipped["bf16"].outcome == "skipped" and "no AMX-BF16" in skipped["bf16"].reason
    unknown = {t.precision: t for t in choose_precision(UNKNOWN, False, {}).trials}
    assert "unknown" in unknown["bf16"].reason
    passed = {t.precision: t for t in choose_precision(AMX, False, {"bf16": 1.0}).trials}
    assert passed["int8"].outcome == passed["fp32"].outcome == "not tried"


def test_rule_order_fastest_first():
    assert [p for p, _ in auto_order(AMX, False)[0]] == ["bf16", "int8", "fp32"]
    assert [p for p, _ in auto_order(AVX2, False)[0]] == ["int8", "fp32"]
    assert [p for p, _ in auto_order(AVX2, True)[0]] == ["fp16", "fp32"]
    assert [p for p, _ in auto_order(AMX, False, "openvino")[0]] == ["bf16", "int8", "fp32"]


def test_rule_refuses_nonsense_measurements():
    with pytest.raises(ValueError, match="fraction in"):
        choose_precision(AVX2, False, {"int8": 99.6})          # a percentage, not a fraction
    with pytest.raises(ValueError, match="threshold"):
        choose_precision(AVX2, False, {}, threshold=0.0)


def test_auto_is_a_request_not_a_backend_precision():
    check_precision_request("auto")
    assert "auto" not in PRECISIONS
    with pytest.raises(ValueError, match="unknown precision 'auto'"):
        check_precision_name("auto")     # backends are never asked for it
    with pytest.raises(ValueError, match="choose from fp32, fp16, bf16, int8, auto"):
        check_precision_request("fp8")


# --------------------------------------------------------------------- on this machine

def _trials(choice):
    return {t.precision: t for t in choice.trials}


def _measured(choice):
    """What the trials record as measured, fed back to the pure rule."""
    out = {}
    for t in choice.trials:
        if t.agreement is not None:
            out[t.precision] = t.agreement
        elif t.outcome == "unavailable":
            out[t.precision] = t.reason
    return out


def _int8_files(cache):
    return sorted(cache.glob("mfaranet-*-int8-*.onnx"))


@pytest.fixture(scope="module")
def fp32_cache(tmp_path_factory):
    """A cache with no int8 model: the fp32 export of the demo weights, made once."""
    return tmp_path_factory.mktemp("auto_fp32_cache")


@pytest.mark.slow
def test_auto_on_this_cpu_follows_the_rule(demo_weights, fp32_cache):
    """Whatever CPU runs this: bf16 is measured where the detector reads bf16 units, int8
    is not built on its own (none exists in a fresh cache), and the choice is the rule's
    on what was measured."""
    from mfaranet_ros.inference import Segmenter

    seg = Segmenter.from_checkpoint(demo_weights, precision="auto", device="cpu",
                                    input_size=(H, W), cache_dir=fp32_cache)
    units, choice = detect_cpu_units(), seg.precision_choice
    trials = _trials(choice)
    assert choice.units == units.describe() and choice.device == "CPU"
    if units.bf16_units:     # bf16 ran on a real OpenVINO, or says why it could not
        assert trials["bf16"].outcome in ("chosen", "rejected", "unavailable")
        if trials["bf16"].outcome != "unavailable":
            assert 0.0 <= trials["bf16"].agreement <= 1.0
    else:
        assert trials["bf16"].outcome == "skipped" and trials["bf16"].agreement is None
    if choice.precision != "bf16":
        assert trials["int8"].outcome == "unavailable"
        assert "build-engine" in trials["int8"].reason and not _int8_files(fp32_cache)
    assert choice.precision == choose_precision(units, False, _measured(choice)).precision
    assert seg.precision == choice.precision
    assert seg.segment(np.zeros((H, W, 3), np.uint8)).labels.shape == (H, W)


@pytest.fixture(scope="module")
def int8_cache(demo_weights, tmp_path_factory):
    """A cache holding ONNX Runtime's int8 model calibrated on 4 generated scenes, and
    no other int8 model (the other tests' shared cache may hold OpenVINO's)."""
    from mfaranet_ros.evaluation.build_engine import calibration_spec
    from mfaranet_ros.inference.backends import ModelSource, create_backend
    from mfaranet_ros.inference.cache import resolve_cache_dir

    pytest.importorskip("onnxruntime.quantization", reason="needs onnxruntime")
    cache = tmp_path_factory.mktemp("auto_int8_cache")
    backend = create_backend("onnxruntime", ModelSource(demo_weights), precision="int8",
                             cache=resolve_cache_dir(cache),
                             calibration=calibration_spec("synthetic", frames=4, held_out=4))
    backend.prepare(1, H, W)
    return cache


@pytest.mark.slow
def test_auto_measures_an_existing_int8_artifact(demo_weights, int8_cache):
    """int8's agreement is measured with the real runtimes on the probe frames and taken
    no higher than the artifact recorded on its calibration's held-out frames."""
    from mfaranet_ros.inference import Segmenter
    from mfaranet_ros.inference.auto_precision import PROBE_FRAMES, network_labels
    from mfaranet_ros.inference.backends import ModelSource, create_backend
    from mfaranet_ros.inference.cache import resolve_cache_dir
    from mfaranet_ros.inference.calibration import HELD_OUT_SEED, scenes
    from mfaranet_ros.inference.onnx_artifacts import embedded_props

    before = _int8_files(int8_cache)
    seg = Segmenter.from_checkpoint(demo_weights, backend="onnxruntime", precision="auto",
                                    input_size=(H, W), cache_dir=int8_cache)
    choice, int8 = seg.precision_choice, _trials(seg.precision_choice)["int8"]
    assert int8.outcome in ("chosen", "rejected") and "onnxruntime" in int8.reason
    assert _int8_files(int8_cache) == before          # nothing calibrated on its own
    # the same measurement, made again here
    source, cache = ModelSource(demo_weights), resolve_cache_dir(int8_cache)
    frames = scenes(HELD_OUT_SEED, PROBE_FRAMES, (H, W)).frames
    runs = {p: network_labels(create_backend("onnxruntime", source, precision=p, cache=cache),
                              frames) for p in ("fp32", "int8")}
    probe = float(np.mean(runs["fp32"] == runs["int8"]))
    (path,) = before
    recorded = json.loads(embedded_props(path)["accuracy"])["label_agreement"]
    assert int8.agreement == pytest.approx(min(probe, recorded), abs=1e-9)
    passed = int8.agreement >= AGREEMENT_THRESHOLD
    assert choice.precision == ("int8" if passed else "fp32") == seg.precision
    assert choice.measured_on == f"generated street scenes, seeds 90000..90003 at {H}x{W}"


@pytest.mark.slow
def test_auto_keeps_the_candidate_that_passes(demo_weights, int8_cache):
    """With a threshold the artifact meets, the int8 backend itself is what comes back."""
    from mfaranet_ros.inference.auto_precision import select_precision
    from mfaranet_ros.inference.backends import ModelSource
    from mfaranet_ros.inference.cache import resolve_cache_dir

    backend, choice = select_precision("auto", ModelSource(demo_weights), device="cpu",
                                       cache=resolve_cache_dir(int8_cache),
                                       network_size=(H, W), units=AVX2, threshold=0.9)
    assert choice.precision == backend.precision == "int8"
    assert backend.name == "onnxruntime" and choice.agreement >= 0.9
    # auto tried OpenVINO's int8 first; this cache holds only ONNX Runtime's
    assert "onnxruntime" in _trials(choice)["int8"].reason


@pytest.mark.slow
def test_auto_bf16_where_the_cpu_has_units(demo_weights, low_precision_cache):
    units = detect_cpu_units()
    if not units.bf16_units:
        pytest.skip(f"this CPU has no bf16 units ({units.describe()})")
    pytest.importorskip("openvino", reason="bf16 runs on OpenVINO")
    from mfaranet_ros.inference import Segmenter

    seg = Segmenter.from_checkpoint(demo_weights, backend="openvino", precision="auto",
                                    input_size=(H, W), cache_dir=low_precision_cache)
    bf16 = _trials(seg.precision_choice)["bf16"]
    assert bf16.outcome in ("chosen", "rejected") and 0.0 <= bf16.agreement <= 1.0
    assert (seg.precision == "bf16") == (bf16.agreement >= AGREEMENT_THRESHOLD)


@pytest.mark.gpu
@pytest.mark.slow
def test_auto_fp16_on_a_gpu(demo_weights):
    from mfaranet_ros.inference import Segmenter

    seg = Segmenter.from_checkpoint(demo_weights, backend="torch", device="cuda",
                                    precision="auto", input_size=(H, W))
    choice = seg.precision_choice
    fp16 = _trials(choice)["fp16"]
    assert choice.device == "GPU" and fp16.outcome in ("chosen", "rejected")
    assert (seg.precision == "fp16") == (fp16.agreement >= AGREEMENT_THRESHOLD)
    assert seg.device.startswith("cuda") and torch.cuda.is_available()


# --------------------------------------------------------------------- bench and options

def test_bench_prints_and_records_the_cpu_units():
    from mfaranet_ros.bench import machine_info, parse_backend
    from mfaranet_ros.bench.report import cpu_line

    assert machine_info()["cpu_units"] == detect_cpu_units().as_dict()
    assert f"matrix units: {detect_cpu_units().describe()}" in cpu_line()
    assert parse_backend("onnxruntime:auto") == ("onnxruntime", "auto")


@pytest.mark.slow
def test_bench_runs_precision_auto(demo_weights, fp32_cache, tmp_path, capsys):
    from mfaranet_ros.cli import main

    out_json = tmp_path / "bench.json"
    assert main(["bench", "--weights", str(demo_weights), "--backends", "onnxruntime:auto",
                 "--input-size", f"{H}x{W}", "--iterations", "1", "--warmup", "0",
                 "--cache-dir", str(fp32_cache), "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "matrix units:" in out and "onnxruntime:auto: fp32 on the CPU" in out
    report = json.loads(out_json.read_text())
    assert report["cpu_units"]["known"] == detect_cpu_units().known
    (row,) = [r for r in report["single"] if r["backend"] == "onnxruntime"]
    assert row["precision"] == "auto:fp32" and row["precision_choice"]["precision"] == "fp32"


def test_options_and_parameter_accept_auto():
    import argparse

    from mfaranet_ros.evaluation.model_args import add_segmenter_options

    p = argparse.ArgumentParser()
    add_segmenter_options(p)
    assert p.parse_args(["--precision", "auto"]).precision == "auto"
    assert p.parse_args([]).precision == "fp32"            # the default stays fp32
    pytest.importorskip("rclpy", reason="the node's parameter table needs rclpy")
    from mfaranet_ros.ros.parameters import PARAMETERS, validate_parameter

    assert validate_parameter("precision", "auto") is None
    (spec,) = [s for s in PARAMETERS if s.name == "precision"]
    assert spec.default == "fp32" and "auto" in spec.description


def test_unknown_cpu_units_never_choose_bf16():
    units = CpuUnits(frozenset(), False, "", "no /proc/cpuinfo on darwin")
    choice = choose_precision(units, False, {"bf16": 1.0})
    assert choice.precision == "fp32" and "darwin" in _trials(choice)["bf16"].reason


@pytest.mark.slow
def test_eval_bag_reports_the_choice(demo_weights, fp32_cache, tmp_path, capsys):
    from mfaranet_ros.cli import main
    from mfaranet_ros.evaluation.synthbag import SyntheticBagSpec, make_synthetic_bag

    bag = make_synthetic_bag(tmp_path / "in", SyntheticBagSpec(frames=1, size=(H, W)))
    rc = main(["eval-bag", bag["path"], "--out", str(tmp_path / "out"), "--weights",
               str(demo_weights), "--precision", "auto", "--input-size", f"{H}x{W}",
               "--device", "cpu", "--cache-dir", str(fp32_cache), "--no-progress",
               "--no-bag"])
    assert rc == 0, capsys.readouterr().err
    model = json.loads((tmp_path / "out" / "report.json").read_text())["model"]
    choice = model["precision_choice"]
    assert choice["precision"] == model["precision"] and choice["units"] == \
        detect_cpu_units().describe()
    assert [t["precision"] for t in choice["trials"]] == ["bf16", "int8", "fp32"]
