"""Launch file, parameter YAML, RViz config and Fast DDS profile agree with the node.

launch_ros is not installable here, so the launch file is parsed (ast), never mocked or run;
its helper functions, which need only the standard library and ament_index_python, are
compiled from that tree and called. The running node's own parameter list is checked
against the same table in test_node.py.
"""
from __future__ import annotations

import ast
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from mfaranet_ros.ros.parameters import PARAMETER_NAMES, PARAMETERS, validate_parameter

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch" / "segment.launch.py"
YAML = REPO / "config" / "segment.yaml"
RVIZ = REPO / "config" / "mfaranet.rviz"

LAUNCH_ARGS = {"image", "params_file", "weights", "backend", "namespace", "use_rviz",
               "log_level", "cameras", "managed", "autostart"}


def _calls(tree, name):
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and (
        getattr(n.func, "id", None) == name or getattr(n.func, "attr", None) == name)]


def _kw(call, name):
    return next((k.value for k in call.keywords if k.arg == name), None)


@pytest.fixture(scope="module")
def launch_tree():
    return ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))


def _function(tree, name):
    return next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)


@pytest.fixture(scope="module")
def helpers(launch_tree):
    """The launch file's plain helper functions, compiled from its own source."""
    ament = pytest.importorskip("ament_index_python.packages")
    names = ("_node_arguments", "_as_bool", "_missing_executable")
    module = ast.Module(body=[_function(launch_tree, n) for n in names], type_ignores=[])
    namespace = {"os": os, "get_package_prefix": ament.get_package_prefix,
                 "PackageNotFoundError": ament.PackageNotFoundError}
    exec(compile(module, str(LAUNCH), "exec"), namespace)
    return namespace


def test_launch_declares_the_documented_arguments(launch_tree):
    names = {c.args[0].value for c in _calls(launch_tree, "DeclareLaunchArgument")}
    assert names == LAUNCH_ARGS
    # every LaunchConfiguration used refers to a declared argument
    used = {c.args[0].value for c in _calls(launch_tree, "LaunchConfiguration")
            if c.args and isinstance(c.args[0], ast.Constant)}
    assert used <= names
    performed = {c.args[0].value for c in _calls(launch_tree, "arg")
                 if c.args and isinstance(c.args[0], ast.Constant)}
    assert performed <= names and {"weights", "backend", "cameras", "namespace",
                                   "params_file", "log_level", "image"} <= performed


def test_launch_overrides_only_declared_parameters(launch_tree):
    keys = {n.targets[0].slice.value for n in ast.walk(launch_tree)
            if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Subscript)
            and getattr(n.targets[0].value, "id", None) == "overrides"}
    assert keys == {"weights", "backend", "cameras"}
    assert keys <= set(PARAMETER_NAMES)


def _segmentation_kwargs(tree):
    """The keyword arguments both node variants are started with (one dict(...))."""
    assigns = [n for n in ast.walk(tree) if isinstance(n, ast.Assign)
               and getattr(n.targets[0], "id", None) == "segmentation"]
    assert len(assigns) == 1
    return assigns[0].value


def _starts(call, executable):
    exe = _kw(call, "executable")
    return isinstance(exe, ast.Constant) and exe.value == executable and any(
        k.arg is None and getattr(k.value, "id", None) == "segmentation" for k in call.keywords)


def test_launch_starts_the_console_script_as_mfaranet(launch_tree):
    nodes = _calls(launch_tree, "Node")
    seg = [n for n in nodes if _starts(n, "segmentation_node")]
    assert len(seg) == 1
    kwargs = _segmentation_kwargs(launch_tree)
    assert _kw(kwargs, "package").id == "PACKAGE"
    assert 'PACKAGE = "mfaranet_ros"' in LAUNCH.read_text()
    assert _kw(kwargs, "name").value == "mfaranet"
    assert ("segmentation_node = mfaranet_ros.ros.entry:segmentation_node"
            in (REPO / "setup.py").read_text())
    assert [_kw(n, "executable").value for n in nodes].count("rviz2") == 1


def test_the_launch_file_changes_no_environment(launch_tree):
    """Checked structurally (launch_ros cannot run here): no action of the launch file sets
    an environment variable, for the launch context (what every process started after an
    include would inherit) or for one process, and it writes nothing into os.environ. The
    Fast DDS profile is the node process's own business (test_node_units: only where the
    RMW is Fast DDS)."""
    for action in ("SetEnvironmentVariable", "AppendEnvironmentVariable",
                   "PrependEnvironmentVariable", "PushEnvironment", "ResetEnvironment",
                   "UnsetEnvironmentVariable", "SetLaunchConfiguration"):
        assert not _calls(launch_tree, action), action
    for call in _calls(launch_tree, "Node") + _calls(launch_tree, "LifecycleNode"):
        assert _kw(call, "env") is None and _kw(call, "additional_env") is None
    kwargs = _segmentation_kwargs(launch_tree)
    assert _kw(kwargs, "env") is None and _kw(kwargs, "additional_env") is None
    writes = [n for n in ast.walk(launch_tree) if isinstance(n, (ast.Assign, ast.Call))
              and "os.environ" in ast.unparse(n) and "get(" not in ast.unparse(n)]
    assert not writes, [ast.unparse(n) for n in writes]


def test_rviz_follows_the_first_camera(launch_tree):
    """With several cameras RViz shows the first one's image, overlay and colour."""
    module = ast.Module(body=[_function(launch_tree, "_rviz_remappings")], type_ignores=[])
    namespace = {}
    exec(compile(module, str(LAUNCH), "exec"), namespace)
    remap = namespace["_rviz_remappings"]
    assert remap("/camera/image_raw", "") == [("image", "/camera/image_raw")]
    assert dict(remap("image", "front")) == {"image": "front/image",
                                             "mfaranet/overlay": "mfaranet/front/overlay",
                                             "mfaranet/color": "mfaranet/front/color"}
    rviz_topics = set(re.findall(r"Value: (mfaranet/\w+|image)\n", RVIZ.read_text()))
    assert rviz_topics == {"image", "mfaranet/overlay", "mfaranet/color"}


def test_managed_choice_starts_the_lifecycle_node_and_brings_it_up(launch_tree):
    """managed:=true: the lifecycle console script under the same name and parameters;
    autostart emits configure, and activate once a configure has succeeded."""
    managed = [n for n in _calls(launch_tree, "LifecycleNode")
               if _starts(n, "segmentation_lifecycle_node")]
    assert len(managed) == 1
    assert ("segmentation_lifecycle_node = mfaranet_ros.ros.entry:segmentation_lifecycle_node"
            in (REPO / "setup.py").read_text())
    transitions = {c.args[1].attr for c in _calls(launch_tree, "_change_state")}
    assert transitions == {"TRANSITION_CONFIGURE", "TRANSITION_ACTIVATE"}
    handler = _calls(launch_tree, "OnStateTransition")
    assert len(handler) == 1
    assert (_kw(handler[0], "start_state").value, _kw(handler[0], "goal_state").value) \
        == ("configuring", "inactive")
    activate = _calls(_kw(handler[0], "entities"), "_change_state")
    assert [c.args[1].attr for c in activate] == ["TRANSITION_ACTIVATE"]
    setup = ast.unparse(_function(launch_tree, "_launch_setup"))
    assert "managed = _as_bool('managed', arg('managed'))" in setup
    assert "autostart = _as_bool('autostart', arg('autostart'))" in setup
    # the transitions named exist in lifecycle_msgs (the PyPI ROS wheels carry it)
    msgs = pytest.importorskip("lifecycle_msgs.msg", reason="needs the ROS message packages")
    assert all(hasattr(msgs.Transition, t) for t in transitions)


def test_yaml_keys_are_exactly_the_declared_parameters():
    doc = yaml.safe_load(YAML.read_text())
    assert list(doc) == ["/**/mfaranet"]
    params = doc["/**/mfaranet"]["ros__parameters"]
    assert sorted(params) == sorted(PARAMETER_NAMES)
    for spec in PARAMETERS:
        value = params[spec.name]
        if spec.kind.endswith("_array"):
            assert value == list(spec.default) == [], spec.name
        else:
            assert value == spec.default, spec.name
        assert validate_parameter(spec.name, value) is None, spec.name


def test_rviz_shows_camera_overlay_and_color():
    doc = yaml.safe_load(RVIZ.read_text())
    displays = doc["Visualization Manager"]["Displays"]
    topics = {d["Name"]: d["Topic"]["Value"] for d in displays
              if d["Class"] == "rviz_default_plugins/Image"}
    assert topics == {"Camera": "image", "Overlay": "mfaranet/overlay",
                      "Color": "mfaranet/color"}
    # RViz subscribes best effort: the node's outputs are reliable, so it still connects
    assert all(d["Topic"]["Reliability Policy"] == "Best Effort" for d in displays)


def test_fastdds_profile_has_a_large_shm_segment():
    path = REPO / "mfaranet_ros" / "ros" / "fastdds_shm.xml"
    ns = {"d": "http://www.eprosima.com"}
    root = ET.parse(path).getroot()
    shm = [t for t in root.iterfind(".//d:transport_descriptor", ns)
           if t.findtext("d:type", namespaces=ns) == "SHM"]
    assert len(shm) == 1
    assert int(shm[0].findtext("d:segment_size", namespaces=ns)) == 64 * 1024 * 1024
    assert int(shm[0].findtext("d:maxMessageSize", namespaces=ns)) >= 6 * 1024 * 1024 * 4
    participant = root.find(".//d:participant", ns)
    assert participant.get("is_default_profile") == "true"
    assert participant.findtext(".//d:useBuiltinTransports", namespaces=ns) == "false"
    used = {t.text for t in participant.iterfind(".//d:userTransports/d:transport_id", ns)}
    declared = {t.findtext("d:transport_id", namespaces=ns)
                for t in root.iterfind(".//d:transport_descriptor", ns)}
    assert used == declared and len(used) == 2
    assert "ros/*.xml" in (REPO / "setup.py").read_text()


# ------------------------------------------------------- empty arguments, optional RViz

def test_an_empty_log_level_drops_the_flag(launch_tree, helpers):
    """An including launch file passing ``log_level: ''`` (rcl cannot parse an empty level)."""
    node_arguments = helpers["_node_arguments"]
    assert node_arguments("") == []
    assert node_arguments("debug") == ["--ros-args", "--log-level", "debug"]
    arguments = _kw(_segmentation_kwargs(launch_tree), "arguments")  # both node variants
    assert arguments.func.id == "_node_arguments"
    assert ast.unparse(arguments.args[0]) == "arg('log_level')"
    # arg() strips, so a blank given on the command line is empty too
    assert "LaunchConfiguration(name).perform(context).strip()" in LAUNCH.read_text()


def test_empty_params_file_means_the_shipped_yaml(launch_tree):
    setup = ast.unparse(_function(launch_tree, "_launch_setup"))
    assert "params_file = arg('params_file') or os.path.join(share, 'config', " \
        "'segment.yaml')" in setup
    assert "parameters=[params_file, overrides]" in setup


def test_use_rviz_reads_like_if_condition(helpers):
    as_bool = helpers["_as_bool"]
    assert [as_bool("use_rviz", v) for v in ("true", "True", "1")] == [True] * 3
    assert [as_bool("use_rviz", v) for v in ("false", "FALSE", "0", "")] == [False] * 4
    with pytest.raises(ValueError, match="use_rviz: expected true or false, got 'yes'"):
        as_bool("use_rviz", "yes")


def test_missing_rviz2_is_reported_not_started(launch_tree, helpers, tmp_path, monkeypatch):
    """Without rviz2 the launch file logs why and starts the node alone (launch failing on
    the missing package would exit and leave the node running without its parent)."""
    missing = helpers["_missing_executable"]
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path / "empty_prefix"))
    assert missing("rviz2", "rviz2").startswith("rviz2 is not installed (apt install "
                                                "ros-$ROS_DISTRO-rviz2")
    # a real ament prefix holding rviz2 (what `apt install ros-<distro>-rviz2` gives)
    prefix = tmp_path / "opt_ros"
    (prefix / "share" / "ament_index" / "resource_index" / "packages").mkdir(parents=True)
    (prefix / "share" / "ament_index" / "resource_index" / "packages" / "rviz2").touch()
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(prefix))
    assert "missing or not executable" in missing("rviz2", "rviz2")
    exe = prefix / "lib" / "rviz2" / "rviz2"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    assert missing("rviz2", "rviz2") == ""
    # the RViz action is a LogInfo when it is missing, the rviz2 Node otherwise
    rviz = ast.unparse(_function(launch_tree, "_rviz"))
    assert "missing = _missing_executable('rviz2', 'rviz2')" in rviz
    assert "if missing:\n        return LogInfo(" in rviz
    setup = ast.unparse(_function(launch_tree, "_launch_setup"))
    assert "if use_rviz:\n        actions.append(_rviz(" in setup


def _comment_above(key: str) -> str:
    """The comment lines right above ``key:`` in the shipped YAML."""
    lines = YAML.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{key}:"))
    above = []
    for line in reversed(lines[:at]):
        if not line.strip().startswith("#"):
            break
        above.append(line)
    return " ".join(reversed(above))


def test_choice_lists_in_yaml_and_launch_name_every_backend_and_precision(launch_tree):
    """The user-facing lists are compared with the one definition, so a backend or a
    precision added there (or dropped from the docs) is seen here."""
    from mfaranet_ros.inference.backends import BACKEND_PRECISIONS, BACKENDS, PRECISIONS

    backend_comment = _comment_above("backend")
    precision_comment = _comment_above("precision")
    backend_arg = next(c for c in _calls(launch_tree, "DeclareLaunchArgument")
                       if c.args and getattr(c.args[0], "value", None) == "backend")
    help_text = ast.literal_eval(_kw(backend_arg, "description"))
    for name in BACKENDS:
        assert re.search(rf"\b{name}\b", backend_comment), (name, backend_comment)
        assert name in help_text, (name, help_text)
    for precision in PRECISIONS:
        assert precision in precision_comment, (precision, precision_comment)
    for backend, precisions in BACKEND_PRECISIONS.items():
        assert f"{backend}: {', '.join(precisions)}" in precision_comment, backend
