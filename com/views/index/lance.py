"""Importing lancedb for what com uses of it: local or object-store tables, never a REST namespace.

Two parts of `import lancedb` cost a search process more than everything it then does (measured on 2 cores:
1.3 s of CPU for the import, 0.6 s with both changes):

- the body of `lance_namespace_urllib3_client`, a generated REST client whose API modules alone are 1.3 MB of
  source (0.5 s). The package is registered here with its body deferred: its submodules (the request models
  lancedb names at import) load as usual, and the first access to anything else of the package (its API
  classes, a REST namespace) runs the body then, so nothing that needs it can miss it;
- on Python < 3.12, lancedb takes `override` and `EnforceOverrides` from the `overrides` package, which checks
  every overriding method's signature at import by disassembling its bytecode (0.2 s). On 3.12 and later
  lancedb uses `typing.override`, a marker that checks nothing; it is given the same marker here, for the
  duration of its import only.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types

DEFERRED = ("lance_namespace_urllib3_client",)


def lancedb():
    """The lancedb module (imported lightly, as above, when it is not imported yet)."""
    if "lancedb" not in sys.modules:
        # Lance logs deprecation notes at WARN on stderr; a user of com cannot act on them.
        os.environ.setdefault("LANCE_LOG", "error")
        for name in DEFERRED:
            _defer_body(name)
        if sys.version_info < (3, 12):
            real = sys.modules.get("overrides")
            sys.modules["overrides"] = _markers()
            try:
                import lancedb as module
            finally:
                if real is None:
                    sys.modules.pop("overrides", None)
                else:
                    sys.modules["overrides"] = real
            return module
    import lancedb as module

    return module


def _markers() -> types.ModuleType:
    """What lancedb imports from `overrides`, as Python 3.12's typing.override: markers, no checks."""
    from typing import final

    module = types.ModuleType("overrides")

    def override(method=None, **_options):
        if method is None:
            return override
        try:
            method.__override__ = True
        except (AttributeError, TypeError):
            pass
        return method

    class EnforceOverrides:
        pass

    module.override = module.overrides = override
    module.EnforceOverrides = EnforceOverrides
    module.final = final
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
