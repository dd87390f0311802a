"""Optional dependencies: the ``[demo]`` extra (matplotlib, scikit-learn) is not installed with
the library, so the commands that need it check for it and say how to install it.

Public API::

    MissingExtraError              ImportError whose message names the extra to install
    require(module, purpose, extra="demo") -> module    the imported module, else the error
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingExtraError", "require"]

_PACKAGES = {"matplotlib": "matplotlib", "sklearn": "scikit-learn"}


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message is one line saying what to run."""


def require(module: str, purpose: str, extra: str = "demo") -> ModuleType:
    """Import ``module`` (e.g. ``"matplotlib.pyplot"``) for ``purpose``, or raise
    `MissingExtraError`: "<purpose> needs matplotlib: pip install 'minimax[demo]'"."""
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        package = _PACKAGES.get(top, top)
        raise MissingExtraError(
            f"{purpose} needs {package} (the [{extra}] extra): pip install 'minimax[{extra}]'"
        ) from None
