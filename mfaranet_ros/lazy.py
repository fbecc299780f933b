"""Package namespaces whose names load on first use (PEP 562), so that importing one
module of a package (a command's parser, say) does not import the whole package and
torch with it: ``mfaranet --help`` imports no torch."""
from __future__ import annotations

import importlib
from typing import Callable, Dict, Iterable, List, Tuple

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Dict[str, Iterable[str]]
                 ) -> Tuple[List[str], Callable[[str], object]]:
    """``(__all__, __getattr__)`` for ``package``: ``exports`` maps each submodule
    (``".segmenter"``) to the names it provides; a name is imported when first used."""
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> object:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module, package), name)

    return list(where), __getattr__
