"""ament_python package setup: installs the library, launch/, config/, models/ and the CLIs."""
import os
from glob import glob

from setuptools import find_packages, setup

package_name = "mfaranet_ros"


def _files(pattern):
    return [f for f in glob(pattern) if os.path.isfile(f)]


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
    extras_require={"fleet": ["ray[data]==2.60.0"]},
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
