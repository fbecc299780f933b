"""The node's parts: parameter validation and declaration (on a real rclpy node, in this
process), the input size rule, QoS choice, the Fast DDS profile switch and what the log
says about it, latency statistics and the diagnostics verdict."""
from __future__ import annotations

import pytest

pytest.importorskip("rclpy", reason="needs rclpy (requirements-ros-pypi.txt)")

from rclpy.qos import ReliabilityPolicy  # noqa: E402

from mfaranet_ros.inference.backends import BACKENDS, PRECISIONS  # noqa: E402
from mfaranet_ros.ros import qos as qos_tools  # noqa: E402
from mfaranet_ros.ros.parameters import (  # noqa: E402
    PARAMETERS,
    NodeConfig,
    input_size_request,
    resolve_weights,
    topic_layout,
    validate_parameter,
)
from mfaranet_ros.ros.stats import (  # noqa: E402
    ERROR,
    OK,
    WARN,
    InputCounters,
    QosEventCounters,
    StageStats,
    assess,
)

R, B = ReliabilityPolicy.RELIABLE, ReliabilityPolicy.BEST_EFFORT


@pytest.mark.parametrize("name,value,needle", [
    # the whole list, from its one definition: a choice that disappears is seen
    ("backend", "tensorflow", f"not one of {', '.join(BACKENDS)}"),
    ("precision", "int4", f"not one of {', '.join(PRECISIONS)}"),
    ("device", "gpu0", "'gpu0' is not empty, 'cpu', 'cuda' or 'cuda:N'"),
    ("input_size", [64], "expected [] (the checkpoint's size), [0, 0] (full resolution) or "
                         "[H, W] with both >= 32, got [64]"),
    ("input_size", [8, 64], "both >= 32"),
    ("input_size", ["a", "b"], "input_size: expected a list of integers, got ['a', 'b']"),
    ("overlay_alpha", 1.2, "overlay_alpha: 1.2 is outside [0.0, 1.0]"),
    ("overlay_alpha", "half", "overlay_alpha: expected a number, got 'half'"),
    ("qos_depth", 0, "qos_depth: 0 is outside [1, 100]"),
    ("qos_depth", 1.5, "qos_depth: expected an integer, got 1.5"),
    ("qos_reliability", "sometimes", "not one of auto, reliable, best_effort"),
    ("input_transport", "theora", "not one of raw, compressed"),
    ("cameras", ["front", "front"], "duplicate"),
    ("cameras", ["front cam"], "invalid camera names"),
    ("publish_color", "yes", "publish_color: expected true or false, got 'yes'"),
    ("qos_depth", True, "qos_depth: expected an integer, got True"),
    ("weights", "  ", "empty path"),
    ("nonsense", 1, "unknown parameter"),
])
def test_invalid_values_are_refused_with_a_reason(name, value, needle):
    reason = validate_parameter(name, value)
    assert reason and needle in reason


def test_defaults_are_valid_and_build_the_config():
    values = {p.name: p.default for p in PARAMETERS}
    cfg = NodeConfig.from_values(values)
    assert cfg.input_size == [] and cfg.cameras == [] and cfg.qos_reliability == "auto"
    assert validate_parameter("input_size", [0, 0]) is None
    assert validate_parameter("overlay_alpha", 1) is None  # an integer is that number
    cfg = NodeConfig.from_values(dict(values, input_size=[64, 128], cameras=["a", "b/c"]))
    assert cfg.input_size == [64, 128] and cfg.cameras == ["a", "b/c"]
    with pytest.raises(ValueError, match="backend.*; .*qos_depth"):
        NodeConfig.from_values(dict(values, backend="x", qos_depth=0))


def test_input_size_request_and_resolution(tmp_path):
    from ros_helpers import constant_checkpoint

    from mfaranet_ros.inference import resolve_input_size
    from mfaranet_ros.model import read_checkpoint

    assert input_size_request([]) == "checkpoint"
    assert input_size_request([0, 0]) is None
    assert input_size_request([64, 128]) == (64, 128)
    recorded = constant_checkpoint(tmp_path / "recorded.pth", input_size=(96, 192))
    unrecorded = constant_checkpoint(tmp_path / "unrecorded.pth", input_size=None)

    def resolved(value, path):
        return resolve_input_size(input_size_request(value), read_checkpoint(path).metadata)

    assert resolved([], recorded) == ((96, 192), "96x192, recorded in the checkpoint")
    assert resolved([], unrecorded) == (None, "full resolution: the checkpoint records no "
                                              "input size")
    assert resolved([0, 0], recorded) == (None, "full resolution, requested")
    assert resolved([64, 128], unrecorded) == ((64, 128), "64x128, requested")


@pytest.fixture
def ros_context():
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context)
    yield context
    context.try_shutdown()


def _declared(context, *overrides):
    """A real rclpy node given ``-p`` overrides; the declaration's config and the node."""
    import rclpy

    from mfaranet_ros.ros.node_parameters import declare_parameters

    args = ["--ros-args"] + [a for o in overrides for a in ("-p", o)]
    node = rclpy.create_node("mfaranet", context=context, cli_args=args)
    return declare_parameters(node), node


def test_every_parameter_has_a_typed_value(ros_context):
    from rclpy.parameter import Parameter

    cfg, node = _declared(ros_context)
    try:
        for spec in PARAMETERS:
            p = node.get_parameter(spec.name)
            assert p.type_ != Parameter.Type.NOT_SET, spec.name
            assert node.describe_parameter(spec.name).type == p.type_.value, spec.name
        assert node.get_parameter("cameras").type_ == Parameter.Type.STRING_ARRAY
        assert node.get_parameter("input_size").type_ == Parameter.Type.INTEGER_ARRAY
        assert cfg == NodeConfig()
    finally:
        node.destroy_node()


def test_an_integer_for_a_decimal_is_that_number(ros_context):
    from rclpy.parameter import Parameter

    cfg, node = _declared(ros_context, "overlay_alpha:=1", "input_size:=[0, 0]",
                          "cameras:=[]")
    try:
        assert cfg.overlay_alpha == 1.0 and cfg.input_size == [0, 0] and cfg.cameras == []
        p = node.get_parameter("overlay_alpha")
        assert p.type_ == Parameter.Type.DOUBLE and p.value == 1.0
        # the same at run time: `ros2 param set /mfaranet overlay_alpha 0` sends an integer
        from mfaranet_ros.ros.node_parameters import integers_as_doubles
        node.add_pre_set_parameters_callback(integers_as_doubles)
        result = node.set_parameters([Parameter("overlay_alpha", value=0)])[0]
        assert result.successful, result.reason
        assert node.get_parameter("overlay_alpha").value == 0.0
    finally:
        node.destroy_node()


def test_every_refused_parameter_is_named_in_one_line(ros_context):
    from mfaranet_ros.ros.node_parameters import ParameterError

    with pytest.raises(ParameterError) as info:
        _declared(ros_context, "overlay_alpha:=2.0", "qos_depth:=0", "publish_color:=3",
                  "backend:=tensorflow", "input_size:=[8, 8]")
    text = str(info.value)
    assert "\n" not in text
    for needle in ("overlay_alpha: 2.0 is outside [0.0, 1.0]", "qos_depth: 0 is outside [1, 100]",
                   "publish_color: expected true or false, got 3",
                   f"backend: 'tensorflow' is not one of {', '.join(BACKENDS)}",
                   "input_size: expected [] (the checkpoint's size)"):
        assert needle in text


def test_a_refused_parameter_can_be_fixed_and_declared_again(ros_context):
    """What a managed node's second ``configure`` does after ``ros2 param set``."""
    import rclpy
    from rclpy.parameter import Parameter

    from mfaranet_ros.ros.node_parameters import ParameterError, declare_parameters

    node = rclpy.create_node("mfaranet", context=ros_context,
                             cli_args=["--ros-args", "-p", "qos_depth:=0"])
    try:
        with pytest.raises(ParameterError, match="qos_depth: 0 is outside"):
            declare_parameters(node)
        assert node.set_parameters([Parameter("qos_depth", value=3)])[0].successful
        cfg = declare_parameters(node)
        assert cfg.qos_depth == 3 and node.describe_parameter("qos_depth").read_only
        assert declare_parameters(node) == cfg  # and again: nothing changes
    finally:
        node.destroy_node()


def test_weights_resolve_against_models_dir(tmp_path, monkeypatch):
    assert resolve_weights(str(tmp_path / "a.pth")) == str(tmp_path / "a.pth")
    assert resolve_weights("mfaranet_synthetic.pth").endswith("models/mfaranet_synthetic.pth")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "local.pth").write_bytes(b"x")
    assert resolve_weights("local.pth") == str(tmp_path / "local.pth")


def test_topic_layout():
    """Inputs relative to the namespace (the driver's), outputs private to the node: with
    several cameras the single-camera layout one level down."""
    assert topic_layout([], "raw") == [("", "image", "~/")]
    assert topic_layout([], "compressed") == [("", "image/compressed", "~/")]
    assert topic_layout(["front", "rear"], "raw") == [("front", "front/image", "~/front/"),
                                                     ("rear", "rear/image", "~/rear/")]


@pytest.mark.parametrize("cameras", [[], ["front", "rear"], ["rig/left"]])
@pytest.mark.parametrize("namespace", ["/", "/car", "/front"])
def test_no_output_is_an_input_in_any_layout(cameras, namespace):
    """Every topic the node publishes against every topic it subscribes (the image and the
    camera_info beside it), resolved the way rcl resolves them for a node named mfaranet in
    ``namespace``: no overlap, the camera's camera_info included."""
    from mfaranet_ros.ros.camera_info import camera_info_topic

    def resolve(name):
        if name.startswith("~/"):
            base = namespace.rstrip("/") + "/mfaranet"
            return f"{base}/{name[2:]}"
        return f"{namespace.rstrip('/')}/{name}"
    outputs, inputs = set(), set()
    for transport in ("raw", "compressed"):
        for _, image, prefix in topic_layout(cameras, transport):
            inputs |= {resolve(image), camera_info_topic(resolve(image))}
            outputs |= {resolve(prefix + o) for o in ("labels", "color", "overlay",
                                                      "confidence", "label_info",
                                                      "camera_info", "latency")}
    assert not outputs & inputs, sorted(outputs & inputs)


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


def test_profile_applied_unless_the_user_set_one(tmp_path):
    """The variable the installed Fast DDS reads, by its library on the library path: 3.x
    (Kilted; libfastdds) FASTDDS_..., 2.x (Humble, Jazzy; libfastrtps) FASTRTPS_...; a
    user's own profile in either is kept and nothing is added."""
    for lib, var in (("libfastdds.so.3.2", "FASTDDS_DEFAULT_PROFILES_FILE"),
                     ("libfastrtps.so.2.14", "FASTRTPS_DEFAULT_PROFILES_FILE")):
        libdir = tmp_path / lib
        libdir.mkdir()
        (libdir / lib).write_bytes(b"")
        env = {"LD_LIBRARY_PATH": f"/nonexistent:{libdir}"}
        assert qos_tools.apply_fastdds_profile(env) == qos_tools.profile_path()
        assert env.pop(var).endswith("mfaranet_ros/ros/fastdds_shm.xml")
        assert env == {"LD_LIBRARY_PATH": f"/nonexistent:{libdir}"}
    unknown = {"LD_LIBRARY_PATH": str(tmp_path / "empty"), "AMENT_PREFIX_PATH": ""}
    assert set(qos_tools.profile_envs(unknown)) <= set(qos_tools.PROFILE_ENVS)
    for lib, var in (("libfastdds.so.3.2", "FASTDDS_DEFAULT_PROFILES_FILE"),
                     ("libfastrtps.so.2.14", "FASTRTPS_DEFAULT_PROFILES_FILE")):
        mine = {var: "/etc/my_profile.xml", "LD_LIBRARY_PATH": str(tmp_path / lib)}
        before = dict(mine)
        assert qos_tools.apply_fastdds_profile(mine) is None
        assert mine == before
        line = qos_tools.describe_profile(None, mine)
        assert f"the user's, from {var}" in line


def test_a_variable_this_fast_dds_ignores_is_said_and_does_not_count(tmp_path):
    """Kilted's Fast DDS 3 reads only FASTDDS_...: a user's FASTRTPS_... there is no
    profile, so the shipped one is applied (to FASTDDS_...) and the log says the other one
    is ignored."""
    libdir = tmp_path / "lib"
    libdir.mkdir()
    (libdir / "libfastdds.so.3.2").write_bytes(b"")
    env = {"LD_LIBRARY_PATH": str(libdir), "FASTRTPS_DEFAULT_PROFILES_FILE": "/etc/old.xml"}
    applied = qos_tools.apply_fastdds_profile(env)
    assert applied == qos_tools.profile_path() == env["FASTDDS_DEFAULT_PROFILES_FILE"]
    line = qos_tools.describe_profile(applied, env, rmw="rmw_fastrtps_cpp")
    assert "reads FASTDDS_DEFAULT_PROFILES_FILE" in line and "this process only" in line
    line = qos_tools.describe_profile(None, {"LD_LIBRARY_PATH": str(libdir),
                                             "FASTRTPS_DEFAULT_PROFILES_FILE": "/etc/old.xml"})
    assert line.startswith("Fast DDS profile: none") and \
        "FASTRTPS_DEFAULT_PROFILES_FILE is set but this Fast DDS does not read it" in line


@pytest.mark.parametrize("rmw", ["rmw_cyclonedds_cpp", "rmw_zenoh_cpp", "rmw_connextdds"])
def test_no_profile_for_another_rmw(rmw):
    """The profile is Fast DDS's: another RMW gets nothing, and the log names the RMW."""
    env = {"RMW_IMPLEMENTATION": rmw}
    assert qos_tools.apply_fastdds_profile(env) is None
    assert env == {"RMW_IMPLEMENTATION": rmw}
    assert qos_tools.describe_profile(None, env, rmw=rmw).startswith(f"RMW {rmw}: not Fast DDS")
    assert qos_tools.describe_profile(None, env).startswith(f"RMW {rmw}: not Fast DDS")
    fast = {"RMW_IMPLEMENTATION": "rmw_fastrtps_dynamic_cpp"}
    assert qos_tools.apply_fastdds_profile(fast) == qos_tools.profile_path()


def test_the_log_says_which_profile_is_applied(tmp_path):
    shipped = qos_tools.profile_path()
    assert "(large shared-memory segment; this process only" in qos_tools.describe_profile(
        shipped, {})
    # the variable already pointing at the shipped profile (a parent process's choice)
    env = {qos_tools.PROFILE_ENV: shipped, "LD_LIBRARY_PATH": ""}
    assert qos_tools.apply_fastdds_profile(env) is None
    line = qos_tools.describe_profile(None, env)
    assert "the shipped profile" in line and "not applied" not in line
    copy = tmp_path / "copy.xml"
    copy.write_bytes(open(shipped, "rb").read())
    assert "the shipped profile" in qos_tools.describe_profile(
        None, {qos_tools.PROFILE_ENV: str(copy)})
    mine = tmp_path / "mine.xml"
    mine.write_text("<dds/>")
    line = qos_tools.describe_profile(None, {qos_tools.PROFILE_ENV: str(mine)})
    assert line == (f"Fast DDS profile: {mine} (the user's, from {qos_tools.PROFILE_ENV}; "
                    f"the shipped large shared-memory profile is not applied)")


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


def test_node_config_has_a_field_per_parameter_with_the_tables_default():
    import dataclasses

    fields = {f.name: f for f in dataclasses.fields(NodeConfig)}
    assert list(fields) == [p.name for p in PARAMETERS]
    cfg = NodeConfig()
    for spec in PARAMETERS:
        default = list(spec.default) if isinstance(spec.default, tuple) else spec.default
        assert getattr(cfg, spec.name) == default, spec.name


def test_camera_info_effective_size_is_roi_then_binning():
    """REP 104, as image_geometry reads it: the ROI (all zeros: the full size), offset
    first, then divided by the binning (0 and 1: none)."""
    import numpy as np
    from sensor_msgs.msg import CameraInfo

    from mfaranet_ros.ros.camera_info import effective_size, folded_intrinsics, size_mismatch

    info = CameraInfo(height=480, width=640, binning_x=2, binning_y=2,
                      k=[400.0, 0, 330, 0, 410.0, 250, 0, 0, 1],
                      p=[400.0, 0, 330, 0, 0, 410.0, 250, 0, 0, 0, 1, 0])
    info.roi.x_offset, info.roi.y_offset, info.roi.width, info.roi.height = 40, 20, 200, 100
    assert effective_size(info) == (50, 100)
    assert size_mismatch(info, (50, 100)) == ""
    assert "its ROI and binning: images of 100x50" in size_mismatch(info, (480, 640))
    k, p = folded_intrinsics(info)
    # by hand: fx 400 / 2, cx (330 - 40) / 2, fy 410 / 2, cy (250 - 20) / 2
    np.testing.assert_allclose(k, [200, 0, 145, 0, 205, 115, 0, 0, 1])
    np.testing.assert_allclose(p, [200, 0, 145, 0, 0, 205, 115, 0, 0, 0, 1, 0])
    plain = CameraInfo(height=480, width=640, binning_x=0, binning_y=1)
    assert effective_size(plain) == (480, 640) and size_mismatch(plain, (480, 640)) == ""


@pytest.mark.parametrize("choice, device, expected", [
    ("auto", "cpu", False), ("auto", "cuda", True), ("auto", "cuda:1", True),
    ("always", "cpu", True), ("never", "cuda", False)])
def test_publish_overlap_auto_is_on_where_inference_waits_for_a_gpu(choice, device, expected):
    from mfaranet_ros.ros.core import publish_overlap

    assert publish_overlap(choice, device) is expected


@pytest.mark.parametrize("value", ["on", "off", True, ""])
def test_publish_overlap_refuses_what_is_not_a_setting(value):
    problem = validate_parameter("publish_overlap", value)
    assert problem and "publish_overlap" in problem
    if isinstance(value, bool):   # what `-p publish_overlap:=off` gives
        assert "give one of auto, always, never" in problem
