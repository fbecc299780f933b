"""The node's pure parts: parameter validation, QoS choice, the Fast DDS profile switch,
latency statistics and the diagnostics verdict (no DDS, no processes)."""
from __future__ import annotations

import pytest

pytest.importorskip("rclpy", reason="needs rclpy (requirements-ros-pypi.txt)")

from rclpy.qos import ReliabilityPolicy  # noqa: E402

from mfaranet_ros.ros import qos as qos_tools  # noqa: E402
from mfaranet_ros.ros.parameters import (PARAMETERS, NodeConfig, resolve_weights,  # noqa: E402
                                         topic_layout, validate_parameter)
from mfaranet_ros.ros.stats import (ERROR, OK, WARN, InputCounters,  # noqa: E402
                                    QosEventCounters, StageStats, assess)

R, B = ReliabilityPolicy.RELIABLE, ReliabilityPolicy.BEST_EFFORT


@pytest.mark.parametrize("name,value,needle", [
    ("backend", "tensorflow", "not one of auto, tensorrt, torch, onnxruntime"),
    ("precision", "int4", "not one of fp32, fp16"),
    ("device", "gpu0", "'gpu0' is not empty, 'cpu', 'cuda' or 'cuda:N'"),
    ("input_size", [64], "expected empty or [H, W]"),
    ("input_size", [8, 64], "both >= 32"),
    ("overlay_alpha", 1.2, "outside [0.0, 1.0]"),
    ("qos_depth", 0, "outside [1, 100]"),
    ("qos_reliability", "sometimes", "not one of auto, reliable, best_effort"),
    ("input_transport", "theora", "not one of raw, compressed"),
    ("cameras", ["front", "front"], "duplicate"),
    ("cameras", ["front cam"], "invalid camera names"),
    ("publish_color", "yes", "expected bool"),
    ("qos_depth", True, "expected integer, got bool"),
    ("weights", "  ", "empty path"),
    ("nonsense", 1, "unknown parameter"),
])
def test_invalid_values_are_refused_with_a_reason(name, value, needle):
    reason = validate_parameter(name, value)
    assert reason and needle in reason


def test_defaults_are_valid_and_build_the_config():
    values = {p.name: p.default for p in PARAMETERS}
    cfg = NodeConfig.from_values(values)
    assert cfg.input_size is None and cfg.cameras == [] and cfg.qos_reliability == "auto"
    cfg = NodeConfig.from_values(dict(values, input_size=[64, 128], cameras=["a", "b/c"]))
    assert cfg.input_size == [64, 128] and cfg.cameras == ["a", "b/c"]
    with pytest.raises(ValueError, match="backend.*; .*qos_depth"):
        NodeConfig.from_values(dict(values, backend="x", qos_depth=0))


def test_weights_resolve_against_models_dir(tmp_path, monkeypatch):
    assert resolve_weights(str(tmp_path / "a.pth")) == str(tmp_path / "a.pth")
    assert resolve_weights("mfaranet_synthetic.pth").endswith("models/mfaranet_synthetic.pth")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "local.pth").write_bytes(b"x")
    assert resolve_weights("local.pth") == str(tmp_path / "local.pth")


def test_topic_layout():
    assert topic_layout([], "raw") == [("", "image", "~/")]
    assert topic_layout([], "compressed") == [("", "image/compressed", "~/")]
    assert topic_layout(["front", "rear"], "raw") == [("front", "front/image", "front/"),
                                                     ("rear", "rear/image", "rear/")]


@pytest.mark.parametrize("setting,offered,current,expected", [
    ("auto", [R, R], None, R),
    ("auto", [R, B], R, B),
    ("auto", [B], None, B),
    ("auto", [], None, B),      # nothing known: best effort matches any camera
    ("auto", [], R, R),         # publishers gone: keep the current choice
    ("reliable", [B], None, R),
    ("best_effort", [R], None, B),
])
def test_choose_reliability(setting, offered, current, expected):
    assert qos_tools.choose_reliability(setting, offered, current) == expected


def test_output_qos_is_reliable_keep_last():
    q = qos_tools.output_qos(2)
    assert q.reliability == R and q.depth == 2


def test_profile_applied_unless_the_user_set_one():
    env = {}
    assert qos_tools.apply_fastdds_profile(env) == qos_tools.profile_path()
    assert env[qos_tools.PROFILE_ENV].endswith("mfaranet_ros/ros/fastdds_shm.xml")
    mine = {qos_tools.PROFILE_ENV: "/etc/my_profile.xml"}
    assert qos_tools.apply_fastdds_profile(mine) is None
    assert mine[qos_tools.PROFILE_ENV] == "/etc/my_profile.xml"


def test_stage_stats_percentiles():
    s = StageStats(window=100)
    for v in range(1, 101):
        s.add({"inference": float(v), "unknown": 1.0})
    p50, p95, vmax = s.summary()["inference"]
    assert p50 == pytest.approx(50.5) and p95 == pytest.approx(95.05) and vmax == 100.0
    assert "unknown" not in s.summary()


def test_health_verdict():
    c = InputCounters()
    c.mark(0.0)
    c.received, c.processed = 30, 30
    qos = QosEventCounters()
    assert assess(failing=None, inputs={"": c}, now=1.0, qos=qos, publishers={}).level == OK
    c.received, c.dropped = 60, 30
    h = assess(failing=None, inputs={"": c}, now=2.0, qos=qos, publishers={})
    assert h.level == WARN and "falling behind" in h.message
    h = assess(failing="RuntimeError: CUDA error", inputs={"": c}, now=2.0, qos=qos,
               publishers={})
    assert h.level == ERROR and "CUDA error" in h.message
    fresh = InputCounters()
    qos = QosEventCounters(incompatible_requested=1, last_policy="RELIABILITY",
                           last_topic="/image", last_event=5.0)
    h = assess(failing=None, inputs={"": fresh}, now=6.0, qos=qos, publishers={"": 1})
    assert h.level == WARN and "no frames received" in h.message and "RELIABILITY" in h.message
    assert assess(failing=None, inputs={"": fresh}, now=30.0, qos=qos,
                  publishers={}).level == OK  # old events age out
