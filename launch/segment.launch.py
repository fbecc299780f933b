"""Launch the MFARANet segmentation node (and optionally RViz).

    ros2 launch mfaranet_ros segment.launch.py image:=/camera/image_raw
    ros2 launch mfaranet_ros segment.launch.py cameras:=front,left,right use_rviz:=true
    ros2 launch mfaranet_ros segment.launch.py managed:=true

``managed:=true`` starts the lifecycle node (``segmentation_lifecycle_node``) instead and,
unless ``autostart:=false`` leaves it to a lifecycle manager, configures it and activates it
once configure has succeeded. Arguments left empty keep the value from ``params_file``
(``log_level``: the node's own default). Values are stripped, so a blank counts as empty:
``ros2 launch`` refuses ``name:=`` with nothing after it on the command line, while an
including launch file may pass ``''``. This file sets no environment variable: the node
applies its Fast DDS profile (a 64 MB shared-memory segment) to its own process only, and
only where the RMW is Fast DDS, so drivers, Nav2 or RViz started by an including launch
file keep their own DDS settings. ``use_rviz:=true`` without rviz2 installed logs why and
starts the node alone.
"""
import os

import lifecycle_msgs.msg
from ament_index_python.packages import (
    PackageNotFoundError,
    get_package_prefix,
    get_package_share_directory,
)
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    LogInfo,
    OpaqueFunction,
    RegisterEventHandler,
)
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState

from launch import LaunchDescription

PACKAGE = "mfaranet_ros"


def _node_arguments(log_level):
    """The node's command-line arguments: ``--log-level`` only when one is given (rcl
    refuses an empty level)."""
    return ["--ros-args", "--log-level", log_level] if log_level else []


def _as_bool(name, value):
    """``true``/``false`` (or 1/0, any case), as launch's IfCondition reads them."""
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0", ""):
        return False
    raise ValueError(f"launch argument {name}: expected true or false, got {value!r}")


def _missing_executable(package, executable):
    """Why ``package``'s ``executable`` cannot be started, or '' when it can."""
    try:
        prefix = get_package_prefix(package)
    except PackageNotFoundError:
        return (f"{package} is not installed (apt install ros-$ROS_DISTRO-{package}, "
                f"then source the setup file again)")
    path = os.path.join(prefix, "lib", package, executable)
    if not os.access(path, os.X_OK):
        return f"{path} is missing or not executable"
    return ""


def _launch_setup(context, *args, **kwargs):
    share = get_package_share_directory(PACKAGE)

    def arg(name):
        return LaunchConfiguration(name).perform(context).strip()

    # a typo fails before anything starts
    use_rviz = _as_bool("use_rviz", arg("use_rviz"))
    managed = _as_bool("managed", arg("managed"))
    autostart = _as_bool("autostart", arg("autostart"))
    params_file = arg("params_file") or os.path.join(share, "config", "segment.yaml")
    overrides = {}
    if arg("weights"):
        overrides["weights"] = arg("weights")
    if arg("backend"):
        overrides["backend"] = arg("backend")
    cameras = [c.strip() for c in arg("cameras").replace(";", ",").split(",") if c.strip()]
    if cameras:
        overrides["cameras"] = cameras

    image = arg("image") or "image"
    remappings = [] if cameras else [("image", image), ("image/compressed", image + "/compressed")]

    actions = []

    segmentation = dict(
        package=PACKAGE,
        name="mfaranet",
        namespace=arg("namespace"),
        parameters=[params_file, overrides],
        remappings=remappings,
        arguments=_node_arguments(arg("log_level")),
        output="screen",
        emulate_tty=True,
    )
    if managed:
        actions += _managed_node(segmentation, autostart)
    else:
        actions.append(Node(executable="segmentation_node", **segmentation))
    if use_rviz:
        actions.append(_rviz(share, arg("namespace"), image, cameras[0] if cameras else ""))
    return actions


def _rviz_remappings(image, camera):
    """RViz's topics: the camera image, the overlay and the colour mask; with several
    cameras, the first camera's (``front/image``, ``mfaranet/front/overlay`` ...)."""
    if not camera:
        return [("image", image)]
    return [("image", f"{camera}/image"), ("mfaranet/overlay", f"mfaranet/{camera}/overlay"),
            ("mfaranet/color", f"mfaranet/{camera}/color")]


def _rviz(share, namespace, image, camera):
    """RViz on the node's outputs; a missing rviz2 is said, not fatal: launch failing to
    start it would exit and leave the node running without its parent."""
    missing = _missing_executable("rviz2", "rviz2")
    if missing:
        return LogInfo(msg=f"use_rviz:=true, but {missing}: starting the node without RViz")
    return Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        namespace=namespace,
        arguments=["-d", os.path.join(share, "config", "mfaranet.rviz")],
        remappings=_rviz_remappings(image, camera),  # "Camera" shows the input
        output="screen",
    )


def _change_state(node, transition_id):
    return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                       transition_id=transition_id))


def _managed_node(segmentation, autostart):
    """The lifecycle node; with autostart, configure now and activate once configured."""
    node = LifecycleNode(executable="segmentation_lifecycle_node", **segmentation)
    if not autostart:
        return [node]
    # start_state "configuring": only a configure that succeeded leads to activate, not a
    # deactivate (active -> inactive) asked for later
    activate_when_configured = RegisterEventHandler(OnStateTransition(
        target_lifecycle_node=node, start_state="configuring", goal_state="inactive",
        entities=[_change_state(node, lifecycle_msgs.msg.Transition.TRANSITION_ACTIVATE)]))
    return [node, activate_when_configured,
            _change_state(node, lifecycle_msgs.msg.Transition.TRANSITION_CONFIGURE)]


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    return LaunchDescription([
        DeclareLaunchArgument("image", default_value="image",
                              description="Camera image topic (single-camera mode)."),
        DeclareLaunchArgument("params_file",
                              default_value=os.path.join(share, "config", "segment.yaml"),
                              description="Node parameters (YAML)."),
        DeclareLaunchArgument("weights", default_value="",
                              description="Checkpoint; empty = the params_file value."),
        DeclareLaunchArgument("backend", default_value="",
                              description="auto | tensorrt | torch | onnxruntime | openvino; "
                                          "empty = the params_file value."),
        DeclareLaunchArgument("namespace", default_value="",
                              description="Namespace of the node (one per camera rig)."),
        DeclareLaunchArgument("cameras", default_value="",
                              description="Comma-separated camera names batched through one "
                                          "model (c/image -> ~/c/labels ...); empty = one "
                                          "camera."),
        DeclareLaunchArgument("use_rviz", default_value="false",
                              description="Start RViz with config/mfaranet.rviz."),
        DeclareLaunchArgument("managed", default_value="false",
                              description="Start the lifecycle (managed) node instead."),
        DeclareLaunchArgument("autostart", default_value="true",
                              description="managed:=true only: configure and activate it; "
                                          "false leaves it unconfigured for a lifecycle "
                                          "manager."),
        DeclareLaunchArgument("log_level", default_value="info",
                              description="debug | info | warn | error | fatal; empty = "
                                          "the node's default (info)."),
        OpaqueFunction(function=_launch_setup),
    ])
