"""QoS choices of the node and the Fast DDS large shared-memory profile.

Why (measured here, PyPI Fast DDS, two processes, 50 frames): a best-effort frame larger
than Fast DDS's default shared-memory segment (~512 KB) falls back to fragmented UDP and
is lost (640x480 rgb8: 0/50; 1920x1080: 0/50); reliable delivers (50/50), and so does
best effort when the *publishing* participant has a large segment (64 MB profile: 50/50).
Hence: the input follows the camera's offered reliability (``auto``), the outputs are
reliable, and the node's own participant gets the large segment.
"""
from __future__ import annotations

import os
import sys
from typing import Iterable, List, MutableMapping, Optional, Tuple

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

__all__ = ["PROFILE_ENV", "PROFILE_ENVS", "profile_envs", "profile_path", "fastdds_rmw",
           "apply_fastdds_profile", "describe_profile", "choose_reliability", "input_qos",
           "output_qos", "reliability_name"]

#: Where Fast DDS looks for its default XML profile: 3.x (Kilted and later) reads
#: FASTDDS_..., 2.x (Humble's 2.6, Jazzy's 2.14) FASTRTPS_... (checked in eProsima's
#: sources, XMLParserCommon.cpp of 2.6.x, 2.14.x and 3.2.x). Each release ignores the other.
PROFILE_ENVS = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
PROFILE_ENV = PROFILE_ENVS[0]
#: Fast DDS's library: renamed from libfastrtps (2.x) to libfastdds (3.x).
_LIBRARIES = {"FASTDDS_DEFAULT_PROFILES_FILE": "libfastdds.so",
              "FASTRTPS_DEFAULT_PROFILES_FILE": "libfastrtps.so"}


def profile_envs(environ: Optional[MutableMapping[str, str]] = None) -> Tuple[str, ...]:
    """The variable(s) the installed Fast DDS reads, found by its library's name on the
    library path (a ROS install's ``setup.bash`` and the PyPI ROS wheels both put it
    there): 3.x only the first, 2.x only the second (3.x warns that the old one is
    deprecated). Both where neither library is found."""
    env = os.environ if environ is None else environ
    dirs = [d for d in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if d]
    dirs += [os.path.join(p, "lib") for p in env.get("AMENT_PREFIX_PATH", "").split(os.pathsep)
             if p]
    return (_fastdds_variables(dirs) or _fastdds_variables([os.path.join(sys.prefix, "lib")])
            or PROFILE_ENVS)


def _fastdds_variables(dirs: List[str]) -> Tuple[str, ...]:
    """The variables of the Fast DDS libraries found in ``dirs``."""
    names = set()
    for d in dirs:
        try:
            names.update(os.listdir(d))
        except OSError:
            continue
    return tuple(var for var, lib in _LIBRARIES.items()
                 if any(n == lib or n.startswith(lib + ".") for n in names))


def profile_path() -> str:
    """The Fast DDS XML profile shipped as package data."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "fastdds_shm.xml")


def fastdds_rmw(environ: Optional[MutableMapping[str, str]] = None) -> bool:
    """Whether the RMW this process will load is Fast DDS: ``RMW_IMPLEMENTATION`` unset
    (Fast DDS is the default RMW of Humble, Jazzy and Kilted) or one of rmw_fastrtps_*."""
    env = os.environ if environ is None else environ
    rmw = env.get("RMW_IMPLEMENTATION", "").strip()
    return not rmw or rmw.startswith("rmw_fastrtps")


def apply_fastdds_profile(environ: Optional[MutableMapping[str, str]] = None) -> Optional[str]:
    """Point this process's Fast DDS at the shipped profile unless the user chose their own.

    Only the calling process's environment (the node's own, never a launch context), only
    where the RMW is Fast DDS, and only the variable the installed Fast DDS reads
    (:func:`profile_envs`); a user's profile in that variable is kept. Must run before
    ``rclpy.init`` (Fast DDS reads the variable when its participant factory starts).
    Returns the path applied, or None.
    """
    env = os.environ if environ is None else environ
    if not fastdds_rmw(env):
        return None
    names = profile_envs(env)
    if any(env.get(name) for name in names):
        return None
    for name in names:
        env[name] = profile_path()
    return profile_path()


def _is_shipped_profile(path: str) -> bool:
    """``path`` is the shipped profile or a copy of it."""
    shipped = profile_path()
    try:
        if os.path.samefile(path, shipped):
            return True
        with open(path, "rb") as mine, open(shipped, "rb") as ours:
            return mine.read() == ours.read()
    except OSError:
        return False


def describe_profile(applied: Optional[str],
                     environ: Optional[MutableMapping[str, str]] = None,
                     rmw: Optional[str] = None) -> str:
    """What the node's participant runs with, for the start-up log: the RMW, and the profile
    the running Fast DDS actually reads (a variable it ignores is named as ignored).

    ``applied``: what :func:`apply_fastdds_profile` returned; ``rmw``: the running RMW's
    identifier (``rclpy.utilities.get_rmw_implementation_identifier()``), when known.
    """
    env = os.environ if environ is None else environ
    if rmw is not None and not rmw.startswith("rmw_fastrtps"):
        return (f"RMW {rmw}: not Fast DDS, no Fast DDS profile applies (large best-effort "
                f"images need that middleware's own shared-memory settings)")
    if rmw is None and not fastdds_rmw(env):
        return (f"RMW {env.get('RMW_IMPLEMENTATION')}: not Fast DDS, no Fast DDS profile "
                f"applies")
    reads = profile_envs(env)
    known = reads != PROFILE_ENVS
    which = f"reads {reads[0]}" if known else "version unknown"
    if applied:
        return (f"Fast DDS profile: {applied} (large shared-memory segment; this process "
                f"only; Fast DDS {which})")
    name = next((n for n in reads if env.get(n)), "")
    ignored = [n for n in PROFILE_ENVS if n not in reads and env.get(n)]
    note = (f"; {', '.join(ignored)} is set but this Fast DDS does not read it"
            if ignored else "")
    if not name:
        return f"Fast DDS profile: none (default transports; Fast DDS {which}){note}"
    path = env[name]
    if _is_shipped_profile(path):
        return (f"Fast DDS profile: {path} (large shared-memory segment; the shipped "
                f"profile, set in {name}){note}")
    return (f"Fast DDS profile: {path} (the user's, from {name}; the shipped large "
            f"shared-memory profile is not applied){note}")


def choose_reliability(setting: str, offered: Iterable[ReliabilityPolicy],
                       current: Optional[ReliabilityPolicy]) -> ReliabilityPolicy:
    """The input subscription's reliability.

    ``reliable`` / ``best_effort`` are taken as given. ``auto`` follows rosbag2's rule:
    reliable when every publisher offers reliable, best effort as soon as one does not
    (a best-effort subscription still matches reliable publishers). With no publisher
    known, the current choice is kept (best effort at start: it matches any camera).
    """
    if setting == "reliable":
        return ReliabilityPolicy.RELIABLE
    if setting == "best_effort":
        return ReliabilityPolicy.BEST_EFFORT
    known = [r for r in offered
             if r in (ReliabilityPolicy.RELIABLE, ReliabilityPolicy.BEST_EFFORT)]
    if not known:
        return current if current is not None else ReliabilityPolicy.BEST_EFFORT
    if all(r == ReliabilityPolicy.RELIABLE for r in known):
        return ReliabilityPolicy.RELIABLE
    return ReliabilityPolicy.BEST_EFFORT


def input_qos(reliability: ReliabilityPolicy, depth: int) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=reliability,
                      durability=DurabilityPolicy.VOLATILE)


def output_qos(depth: int) -> QoSProfile:
    """Reliable, volatile, KEEP_LAST: reliable and best-effort viewers both connect."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def reliability_name(policy: Optional[ReliabilityPolicy]) -> str:
    if policy is None:
        return "none"
    return {ReliabilityPolicy.RELIABLE: "reliable",
            ReliabilityPolicy.BEST_EFFORT: "best_effort"}.get(policy, str(policy))
