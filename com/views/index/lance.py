"""Importing lancedb for what com uses of it: local or object-store tables, never a REST namespace.

`import lancedb` imports the body of `lance_namespace_urllib3_client`, a generated REST client whose API
modules alone (1.3 MB of source) cost 0.7 s of CPU, half of lancedb's import, in every search process. The
package is registered here with its body deferred: its submodules (the request models lancedb names at
import) load as usual, and the first access to anything else of the package (its API classes, a REST
namespace) runs the body then, so nothing that needs it can miss it.
"""

from __future__ import annotations

import importlib.util
import os
import sys

DEFERRED = ("lance_namespace_urllib3_client",)


def lancedb():
    """The lancedb module (with the REST client's package body deferred when lancedb is not imported yet)."""
    if "lancedb" not in sys.modules:
        # Lance logs deprecation notes at WARN on stderr; a user of com cannot act on them.
        os.environ.setdefault("LANCE_LOG", "error")
        for name in DEFERRED:
            _defer_body(name)
    import lancedb as module

    return module


def _defer_body(name: str) -> None:
    if name in sys.modules:
        return
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return
    if spec is None or spec.loader is None or not spec.submodule_search_locations:
        return  # not installed, or not a package: nothing to defer
    module = importlib.util.module_from_spec(spec)
    ran = []

    def __getattr__(attr):
        if not ran:
            ran.append(True)
            spec.loader.exec_module(module)  # the package body, once; it defines the attribute or not
            return getattr(module, attr)
        raise AttributeError(f"module {name!r} has no attribute {attr!r}")

    module.__getattr__ = __getattr__
    sys.modules[name] = module
