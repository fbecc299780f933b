"""ament_python package setup: installs the library, launch/, config/, models/ and the CLIs."""
import os
from glob import glob

from setuptools import find_packages, setup

package_name = "mfaranet_ros"
HERE = os.path.dirname(os.path.abspath(__file__))


def _files(pattern):
    return [f for f in glob(pattern) if os.path.isfile(f)]


def _requirements(name):
    """The requirements of ``requirements-<name>.txt`` (``requirements.txt`` for the
    runtime): one list, kept in those files, for pip, this file and the installer."""
    path = os.path.join(HERE, "requirements.txt" if name == "runtime" else
                        f"requirements-{name}.txt")
    with open(path, encoding="utf-8") as f:
        lines = (line.split("#", 1)[0].strip() for line in f)
        return [line for line in lines if line and not line.startswith("-")]


# Install sets by what a machine runs. "runtime" is what both nodes import; the rest are
# optional: the CPU backends, evaluation, training, fleet evaluation. They are extras, not
# install_requires, on purpose: a console script made by `colcon build --symlink-install`
# checks install_requires at every start, and a Jetson's OpenCV (JetPack's) and torch
# (NVIDIA's) need not be pip distributions. scripts/install_runtime.py installs a set while
# keeping the machine's torch, numpy and OpenCV.
EXTRAS = {name: _requirements(name) for name in
          ("runtime", "onnxruntime", "openvino", "eval", "train", "fleet")}
EXTRAS["bench"] = sorted(set(EXTRAS["onnxruntime"] + EXTRAS["openvino"]))
EXTRAS["fleet"] = EXTRAS["eval"] + EXTRAS["fleet"]


setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    package_data={package_name: ["ros/*.xml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml", "README.md"]),
        ("share/" + package_name + "/launch", _files("launch/*.py")),
        ("share/" + package_name + "/config", _files("config/*")),
        ("share/" + package_name + "/config/label_maps", _files("config/label_maps/*.yaml")),
        ("share/" + package_name + "/models", _files("models/*")),
    ],
    install_requires=["setuptools"],
    extras_require=EXTRAS,
    zip_safe=False,
    maintainer="mfaranet_ros maintainers",
    maintainer_email="maintainers@mfaranet-ros.dev",
    description="MFARANet real-time semantic segmentation for ROS 2",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "mfaranet = mfaranet_ros.cli:main",
            "segmentation_node = mfaranet_ros.ros.entry:segmentation_node",
            "segmentation_lifecycle_node = mfaranet_ros.ros.entry:segmentation_lifecycle_node",
        ],
    },
)
