"""Humble, by its API surface: the package uses no rclpy module, name, method or keyword
argument that Humble's rclpy lacks, except through ``mfaranet_ros/ros/compat.py``.

No Humble wheels exist, so Humble's rclpy is not importable here. Its public surface
(modules, names, functions and class methods with their parameter names) is committed as
``test/data/rclpy_humble_surface.json``, made by ``scripts/rclpy_surface.py`` from rclpy's
``humble`` branch. The same script reads the INSTALLED rclpy (Kilted) from its sources, so
"a method of rclpy" means a method some rclpy class defines, whatever object it is called on.

The scan is an AST walk of every ``.py`` file of the package (module level and inside
functions) and fails, naming ``file:line``, on
- ``import rclpy.X`` / ``from rclpy.X import Y`` where module X or name Y is not in Humble,
- ``rclpy.X.name`` where ``name`` is not in Humble's module ``rclpy.X``,
- ``obj.m(...)`` where ``m`` is a method of an installed rclpy class but of no Humble class,
- a keyword argument ``k`` in a call of such a method, or of an rclpy function or class
  reached by name (``rclpy.init(...)``, ``from rclpy import try_shutdown``), where no Humble
  function or method of that name accepts ``k`` (nor takes ``**kwargs``).
"""
from __future__ import annotations

import ast
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Set

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mfaranet_ros"
FIXTURE = ROOT / "test" / "data" / "rclpy_humble_surface.json"
# The one module allowed to reach the version-dependent API (by feature detection).
COMPAT = "mfaranet_ros/ros/compat.py"

# Method names an installed rclpy class defines (and Humble's do not) that the package
# calls on objects that are not rclpy's. Keep it short; each with the reason.
NOT_RCLPY_METHODS: Set[str] = set()


def _load_surface_script():
    spec = importlib.util.spec_from_file_location(
        "rclpy_surface", ROOT / "scripts" / "rclpy_surface.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Surface:
    """Humble's surface, indexed for the scan, and the installed rclpy's method names."""

    modules: Dict[str, dict]
    humble_methods: Set[str]
    installed_methods: Set[str]
    signatures: Dict[str, List[dict]] = field(default_factory=dict)   # name -> [signature]

    @classmethod
    def build(cls, humble: dict, installed: dict) -> "Surface":
        modules = humble["modules"]
        surface = cls(modules, _method_names(modules), _method_names(installed["modules"]))
        for module in modules.values():
            for name, signature in module["functions"].items():
                surface.signatures.setdefault(name, []).append(signature)
            for klass in module["classes"].values():
                for name, signature in klass["methods"].items():
                    surface.signatures.setdefault(name, []).append(signature)
        return surface

    def accepts(self, name: str, keyword: str) -> bool:
        """Whether some Humble function or method called ``name`` takes ``keyword``."""
        return any(keyword in s["params"] or s["var_keyword"]
                   for s in self.signatures.get(name, []))

    def has_name(self, module: str, name: str) -> bool:
        return name in self.modules[module]["names"] or f"{module}.{name}" in self.modules

    def constructor(self, module: str, name: str) -> Optional[dict]:
        """The ``__init__`` signature of class ``module.name`` (or of a base that has one)."""
        klass = self.modules[module]["classes"].get(name)
        seen = set()
        while klass is not None and name not in seen:
            seen.add(name)
            if "__init__" in klass["methods"]:
                return klass["methods"]["__init__"]
            name = klass["bases"][0] if klass["bases"] else ""
            klass = next((m["classes"][name] for m in self.modules.values()
                          if name in m["classes"]), None)
        return None


def _method_names(modules: Dict[str, dict]) -> Set[str]:
    return {m for module in modules.values() for klass in module["classes"].values()
            for m in klass["methods"] if not m.startswith("__")}


@pytest.fixture(scope="module")
def surface() -> Surface:
    import rclpy
    script = _load_surface_script()
    installed = script.surface(script._dir_sources(str(Path(rclpy.__file__).parent)),
                               "installed rclpy")
    return Surface.build(json.loads(FIXTURE.read_text()), installed)


class _FileScan:
    """The Humble gaps of one source file, as ``path:line: message`` strings."""

    def __init__(self, surface: Surface, path: str):
        self.surface = surface
        self.path = path
        self.module_aliases: Dict[str, str] = {}    # local name -> rclpy module
        self.imported: Dict[str, tuple] = {}        # local name -> (rclpy module, name)
        self.foreign: Set[str] = set()              # names imported from other packages
        self.findings: List[str] = []

    def report(self, node: ast.AST, message: str) -> None:
        self.findings.append(f"{self.path}:{node.lineno}: {message}")

    def run(self, tree: ast.AST) -> List[str]:
        nodes = list(ast.walk(tree))
        for node in nodes:      # bindings first: an import inside a function counts too
            if isinstance(node, ast.Import):
                self._import(node)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                self._import_from(node)
        for node in nodes:
            if isinstance(node, ast.Attribute):
                self._module_attribute(node)
            elif isinstance(node, ast.Call):
                self._call(node)
        return self.findings

    def _import(self, node: ast.Import) -> None:
        for alias in node.names:
            if not _is_rclpy(alias.name):
                self.foreign.add(alias.asname or alias.name.split(".")[0])
                continue
            if alias.name not in self.surface.modules:
                self.report(node, f"module {alias.name} does not exist in Humble")
            elif alias.asname:
                self.module_aliases[alias.asname] = alias.name
            else:
                self.module_aliases[alias.name.split(".")[0]] = "rclpy"

    def _import_from(self, node: ast.ImportFrom) -> None:
        if not _is_rclpy(node.module):
            self.foreign.update(alias.asname or alias.name for alias in node.names)
            return
        if node.module not in self.surface.modules:
            self.report(node, f"module {node.module} does not exist in Humble")
            return
        for alias in node.names:
            local = alias.asname or alias.name
            if f"{node.module}.{alias.name}" in self.surface.modules:
                self.module_aliases[local] = f"{node.module}.{alias.name}"
            elif self.surface.has_name(node.module, alias.name):
                self.imported[local] = (node.module, alias.name)
            else:
                self.report(node, f"{node.module}.{alias.name} does not exist in Humble")

    def _rclpy_module(self, node: ast.AST) -> Optional[str]:
        """The rclpy module an expression such as ``rclpy.qos`` names, if it names one."""
        if isinstance(node, ast.Name):
            return self.module_aliases.get(node.id)
        if isinstance(node, ast.Attribute):
            parent = self._rclpy_module(node.value)
            if parent and f"{parent}.{node.attr}" in self.surface.modules:
                return f"{parent}.{node.attr}"
        return None

    def _module_attribute(self, node: ast.Attribute) -> None:
        module = self._rclpy_module(node.value)
        if module and not self.surface.has_name(module, node.attr):
            self.report(node, f"{module}.{node.attr} does not exist in Humble")

    def _call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id in self.imported:
            self._keywords(node, *self.imported[func.id])
        elif isinstance(func, ast.Attribute):
            module = self._rclpy_module(func.value)
            if module:
                if self.surface.has_name(module, func.attr):
                    self._keywords(node, module, func.attr)
            elif func.attr in self.surface.installed_methods and not self._foreign(func.value):
                self._method_call(node, func.attr)

    def _foreign(self, node: ast.AST) -> bool:
        """Whether ``node`` is a name imported from another package (``ray`` in
        ``ray.init(...)``): its methods are not rclpy's, whatever their names."""
        return isinstance(node, ast.Name) and node.id in self.foreign

    def _method_call(self, node: ast.Call, method: str) -> None:
        if method in NOT_RCLPY_METHODS:
            return
        if method not in self.surface.humble_methods:
            self.report(node, f".{method}() is no method of any rclpy class in Humble")
            return
        for keyword in _keyword_names(node):
            if not self.surface.accepts(method, keyword):
                self.report(node, f".{method}() takes no keyword {keyword!r} in Humble")

    def _keywords(self, node: ast.Call, module: str, name: str) -> None:
        """Keywords of a call of the rclpy function or class ``module.name``."""
        init = self.surface.constructor(module, name)
        for keyword in _keyword_names(node):
            if init is not None:
                ok = keyword in init["params"] or init["var_keyword"]
            elif name in self.surface.modules[module]["classes"]:
                ok = True   # a class without an __init__ in rclpy: nothing to check
            else:
                ok = self.surface.accepts(name, keyword)
            if not ok:
                self.report(node, f"{module}.{name}() takes no keyword {keyword!r} in Humble")


def _is_rclpy(module: str) -> bool:
    return module == "rclpy" or module.startswith("rclpy.")


def _keyword_names(node: ast.Call) -> List[str]:
    return [k.arg for k in node.keywords if k.arg is not None]   # None: a **mapping


def scan_source(surface: Surface, text: str, path: str) -> List[str]:
    """The Humble gaps in one file's source; none for the compatibility module."""
    if path == COMPAT:
        return []
    return _FileScan(surface, path).run(ast.parse(text, filename=path))


def test_package_uses_only_humble_rclpy_api_outside_compat(surface):
    findings = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relpath = path.relative_to(ROOT).as_posix()
        findings += scan_source(surface, path.read_text(encoding="utf-8"), relpath)
    assert not findings, "rclpy API that Humble lacks (route it through compat.py):\n" + \
        "\n".join(findings)


# (source, line of the gap, the finding)
GAPS = [
    ("from rclpy.event_handler import PublisherEventCallbacks\n", 1,
     "module rclpy.event_handler does not exist in Humble"),
    ("def count(sub):\n    return sub.get_publisher_count()\n", 2,
     ".get_publisher_count() is no method of any rclpy class in Humble"),
    ("import rclpy\nrclpy.try_shutdown(uninstall_handlers=False)\n", 2,
     "rclpy.try_shutdown() takes no keyword 'uninstall_handlers' in Humble"),
    ("from rclpy import try_shutdown\ntry_shutdown(uninstall_handlers=False)\n", 2,
     "rclpy.try_shutdown() takes no keyword 'uninstall_handlers' in Humble"),
    ("def start():\n    import rclpy.event_handler\n", 2,
     "module rclpy.event_handler does not exist in Humble"),
    ("from rclpy.qos import QoSProfile, NoSuchName\n", 1,
     "rclpy.qos.NoSuchName does not exist in Humble"),
]


@pytest.mark.parametrize("source,line,finding", GAPS)
def test_scanner_names_each_humble_gap_with_its_line(surface, source, line, finding):
    findings = scan_source(surface, source, "mfaranet_ros/ros/example.py")
    assert findings == [f"mfaranet_ros/ros/example.py:{line}: {finding}"]


@pytest.mark.parametrize("source", [gap[0] for gap in GAPS])
def test_scanner_lets_compat_use_what_humble_lacks(surface, source):
    assert scan_source(surface, source, COMPAT) == []


def test_scanner_passes_humble_api(surface):
    source = ("import rclpy\n"
              "from rclpy.qos import QoSProfile, ReliabilityPolicy\n"
              "from rclpy.qos_event import SubscriptionEventCallbacks\n"
              "rclpy.init(args=None, signal_handler_options=None)\n"
              "QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)\n"
              "def run(node, sub):\n"
              "    node.create_subscription(int, 't', print, 1, event_callbacks=None)\n"
              "    node.count_publishers(sub.topic_name)\n"
              "    rclpy.try_shutdown()\n"
              "import ray\n"
              "ray.init(address='local', num_cpus=1)\n")   # ray's init, not rclpy's
    assert scan_source(surface, source, "mfaranet_ros/ros/example.py") == []


def test_compat_itself_holds_the_gaps_it_handles(surface):
    """compat.py's own source, scanned as if it were any other module, shows the Humble
    gaps it bridges: the exemption is what keeps them out of the package scan."""
    text = (ROOT / COMPAT).read_text(encoding="utf-8")
    findings = "\n".join(scan_source(surface, text, "mfaranet_ros/ros/elsewhere.py"))
    for gap in ("module rclpy.event_handler does not exist in Humble",
                ".get_publisher_count() is no method of any rclpy class in Humble",
                "rclpy.try_shutdown() takes no keyword 'uninstall_handlers' in Humble"):
        assert gap in findings
