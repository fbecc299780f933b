"""build-engine and the node share one default precision, so the README's pre-build line
(no --precision) builds the artifact the node loads with its default parameters."""
from mfaranet_ros.cli import build_parser
from mfaranet_ros.inference.backends.base import DEFAULT_PRECISION
from mfaranet_ros.ros.parameters import PARAMETERS, NodeConfig


def test_build_engine_and_the_node_default_to_the_same_precision(capsys):
    node_default = next(p.default for p in PARAMETERS if p.name == "precision")
    assert node_default == NodeConfig().precision == DEFAULT_PRECISION
    args = build_parser().parse_args(["build-engine", "--weights", "W", "--backend",
                                      "tensorrt", "--input-size", "512x1024"])
    assert args.precision is None  # resolved to DEFAULT_PRECISION by the command
    try:
        build_parser().parse_args(["build-engine", "--help"])
    except SystemExit:
        pass
    help_text = " ".join(capsys.readouterr().out.split())
    assert f"default: {DEFAULT_PRECISION}, the node's default" in help_text
