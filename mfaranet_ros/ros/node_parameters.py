"""The parameter table declared on an rclpy node: descriptors, typed values, one-line refusals.

Shared by every node of the package. rclpy refuses a bad override inside
``declare_parameter`` with an exception (``InvalidParameterValueException`` against the
descriptor's range, ``InvalidParameterTypeException`` for an integer where a double is
declared), which would end start-up with a traceback. So each parameter is first declared
with dynamic typing (any override is taken as given), checked against the table
(:func:`~.parameters.validate_parameter`), and only then given its real descriptor with
``Node.set_descriptor`` and the value in its declared type: an integer for a decimal
parameter becomes that number, an empty or unset list a typed empty list. Every problem is
collected into one line.

The managed node (``managed=True``) declares the same table, but a parameter the plain node
can change only by a restart is writable there (applied at the next configure). A value it
refuses at start-up does not end the process: the parameter keeps it, dynamically typed so
``ros2 param set`` can fix it, and each configure declares the table again, failing with
the reason until it is fixed.
"""
from __future__ import annotations

import array
from typing import Any, Callable, List, Optional

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    ParameterType,
    ParameterValue,
    SetParametersResult,
)
from rclpy.exceptions import InvalidParameterValueException
from rclpy.node import Node
from rclpy.parameter import Parameter

from .compat import add_pre_set_parameters_callback, has_pre_set_parameters_callback
from .parameters import PARAMETERS, NodeConfig, ParamSpec, validate_parameter

__all__ = ["ParameterError", "declare_parameters", "descriptor", "integers_as_doubles",
           "accept_updates"]

_PARAM_TYPES = {
    "string": ParameterType.PARAMETER_STRING,
    "bool": ParameterType.PARAMETER_BOOL,
    "integer": ParameterType.PARAMETER_INTEGER,
    "double": ParameterType.PARAMETER_DOUBLE,
    "integer_array": ParameterType.PARAMETER_INTEGER_ARRAY,
    "string_array": ParameterType.PARAMETER_STRING_ARRAY,
}
_ROS_TYPES = {
    "string": Parameter.Type.STRING,
    "bool": Parameter.Type.BOOL,
    "integer": Parameter.Type.INTEGER,
    "double": Parameter.Type.DOUBLE,
    "integer_array": Parameter.Type.INTEGER_ARRAY,
    "string_array": Parameter.Type.STRING_ARRAY,
}
_SPECS = {p.name: p for p in PARAMETERS}


class ParameterError(ValueError):
    """Parameters refused at start-up; the text is one line naming each one."""


def descriptor(spec: ParamSpec, managed: bool = False,
               dynamic_decimals: bool = False) -> ParameterDescriptor:
    """The descriptor ``ros2 param describe`` and rqt_reconfigure show for ``spec``.

    ``managed``: the lifecycle node, where a restart-only parameter is writable instead
    (its on-set callback refuses a change unless the node is unconfigured).
    ``dynamic_decimals``: a decimal parameter stays dynamically typed, so that an integer
    set later reaches the on-set callback (rclpy without a pre-set callback: Humble).
    """
    read_only = spec.read_only and not managed
    d = ParameterDescriptor(name=spec.name, type=_PARAM_TYPES[spec.kind],
                            description=spec.description, read_only=read_only,
                            dynamic_typing=dynamic_decimals and spec.kind == "double")
    constraints = [spec.constraints] if spec.constraints else []
    if spec.choices:
        constraints.append("one of: " + ", ".join(spec.choices))
    if read_only:
        constraints.append("read-only: a change needs a restart")
    elif spec.read_only:
        constraints.append("applied at configure: change it while unconfigured")
    d.additional_constraints = "; ".join(constraints)
    if spec.int_range:
        d.integer_range = [IntegerRange(from_value=spec.int_range[0],
                                        to_value=spec.int_range[1], step=1)]
    if spec.float_range:
        d.floating_point_range = [FloatingPointRange(from_value=spec.float_range[0],
                                                     to_value=spec.float_range[1], step=0.0)]
    return d


def _as_declared(spec: ParamSpec, value: Any) -> Any:
    """``value`` in the parameter's own type where that loses nothing (1 -> 1.0 for a
    double; unset or an untyped ``[]`` -> an empty list); anything else unchanged."""
    if spec.kind == "double" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if spec.kind.endswith("_array"):
        if value is None or (isinstance(value, (list, tuple, array.array)) and not len(value)):
            return []
        if isinstance(value, (tuple, array.array)):
            return list(value)
    return value


def _typed_value(spec: ParamSpec, value: Any) -> ParameterValue:
    return Parameter(spec.name, _ROS_TYPES[spec.kind], value).get_parameter_value()


def _declare_one(node: Node, spec: ParamSpec, managed: bool = False,
                 dynamic_decimals: bool = False) -> str:
    """Declares ``spec`` on ``node``; the reason it is refused, or '' when it is fine.

    Again on a node that has it: a parameter refused before (still dynamically typed, so
    ``ros2 param set`` can fix it) is checked again; one with its descriptor is kept.
    ``managed``: the descriptor of the lifecycle node (see :func:`descriptor`).
    """
    if not node.has_parameter(spec.name):
        default = spec.default
        if spec.kind.endswith("_array"):
            default = list(default) or None  # an empty list has no type of its own yet
        node.declare_parameter(spec.name, default, ParameterDescriptor(dynamic_typing=True))
    value = _as_declared(spec, node.get_parameter(spec.name).value)
    reason = validate_parameter(spec.name, value)
    if reason or not node.describe_parameter(spec.name).dynamic_typing:
        return reason or ""
    try:
        node.set_descriptor(spec.name, descriptor(spec, managed, dynamic_decimals),
                            _typed_value(spec, value))
    except InvalidParameterValueException as exc:  # a check of rclpy's the table lacks
        return f"{spec.name}: {exc}"
    return ""


def declare_parameters(node: Node, managed: bool = False) -> NodeConfig:
    """Declares the whole table on ``node`` and returns the validated configuration.

    Raises :class:`ParameterError` naming every refused parameter, its value and what is
    allowed, in one line. Can be called again on the same node (a managed node's next
    ``configure`` after the user fixed a refused value). ``managed``: the lifecycle
    node's descriptors (see :func:`descriptor`).
    """
    dynamic_decimals = not has_pre_set_parameters_callback(node)
    problems = [r for r in (_declare_one(node, spec, managed, dynamic_decimals)
                            for spec in PARAMETERS) if r]
    if problems:
        raise ParameterError("; ".join(problems))
    return NodeConfig.from_values(
        {spec.name: _as_declared(spec, node.get_parameter(spec.name).value)
         for spec in PARAMETERS})


def integers_as_doubles(params: List[Parameter]) -> List[Parameter]:
    """Pre-set callback: ``ros2 param set /mfaranet overlay_alpha 1`` sends an integer;
    it is taken as that number, as at start-up, instead of refused for its type."""
    out = []
    for p in params:
        spec = _SPECS.get(p.name)
        if spec is not None and spec.kind == "double" and p.type_ == Parameter.Type.INTEGER:
            p = Parameter(p.name, Parameter.Type.DOUBLE, float(p.value))
        out.append(p)
    return out


def accept_updates(node: Node, refuse: Callable[[str, Any], Optional[str]],
                   apply: Callable[[str, Any], None]) -> None:
    """``ros2 param set`` on ``node``: each value checked against the table, then by the
    node's own rule ``refuse`` (the reason, or None), and only if all pass, ``apply``-ed.

    An integer for a decimal parameter is taken as that number: rewritten before the set by
    a pre-set callback where rclpy has one (Iron and later); on Humble the decimal
    parameters stay dynamically typed (:func:`declare_parameters`), the integer is stored
    as given (``ros2 param get`` shows an integer) and converted here.
    """
    add_pre_set_parameters_callback(node, integers_as_doubles)

    def on_set(params: List[Parameter]) -> SetParametersResult:
        values = [(p.name, _as_declared(_SPECS[p.name], p.value) if p.name in _SPECS
                   else p.value) for p in params]
        for name, value in values:
            reason = validate_parameter(name, value) or refuse(name, value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        for name, value in values:
            apply(name, value)
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(on_set)
