"""A small name -> object registry, in the spirit of fvcore's ``Registry``.

One instance holds layer classes (``layers.layer_registry``), another the named
functions usable in ``Lambda`` layers and as activations
(``layers.functions``).  Registration is by decorator; a miss raises a
:class:`RegistryError` that names the registry, suggests the closest names
and says how to register a new entry.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable, Iterator
from typing import Any


class RegistryError(KeyError, LookupError):
    """A lookup or registration in a :class:`Registry` failed.

    Subclasses ``KeyError`` so callers that treat the registry as a mapping
    keep working; ``str()`` is the full sentence (``KeyError`` would quote it).
    """

    def __str__(self) -> str:  # KeyError.__str__ adds quotes around the message
        return str(self.args[0]) if self.args else ""


class Registry:
    """Maps names to objects; the names are what YAML configs refer to.

    Args:
        name: what the registry holds, used in error messages
            (``"layer"``, ``"function"``).
        how_to_register: one sentence appended to a miss, telling the user
            how to add an entry.
    """

    def __init__(self, name: str, how_to_register: str = ""):
        self._name = name
        self._how = how_to_register
        self._objects: dict[str, Any] = {}
        self._aliases: dict[str, str] = {}

    # ------------------------------------------------------------------ write
    def register(self, obj: Any = None, *, name: str | None = None, aliases: Iterable[str] = ()):
        """Register ``obj`` under ``name`` (default: its ``__name__``).

        Usable as ``@registry.register``, ``@registry.register(name="x")`` or
        ``registry.register(obj)``.  Registering a taken name raises, because
        silently replacing a layer would change every model that uses it.
        """

        def _do(o: Any) -> Any:
            key = name or getattr(o, "__name__", None)
            if not key:
                raise RegistryError(f"cannot register {o!r} in the {self._name} registry: give it a name=")
            for k in (key, *aliases):
                if k in self._objects or k in self._aliases:
                    existing = self._objects.get(k) or self._objects[self._aliases[k]]
                    if existing is o:
                        continue
                    raise RegistryError(
                        f"{self._name} {k!r} is already registered (as {_describe(existing)}); "
                        f"choose another name for {_describe(o)}."
                    )
            self._objects[key] = o
            for a in aliases:
                if a != key:
                    self._aliases[a] = key
            return o

        return _do if obj is None else _do(obj)

    def load_module(self, dotted: str) -> None:
        """Import a user module so that its ``@register`` decorators run."""
        try:
            importlib.import_module(dotted)
        except Exception as exc:  # ImportError, but also errors inside the module
            raise RegistryError(
                f"cannot import the registry module {dotted!r} ({type(exc).__name__}: {exc}). "
                "Check that it is importable (on PYTHONPATH, or a package installed in .venv) "
                "and that it imports cleanly with `python -c 'import "
                f"{dotted}'`."
            ) from exc

    # ------------------------------------------------------------------- read
    def get(self, name: str) -> Any:
        """Return the object registered as ``name`` (or an alias of it)."""
        if name in self._objects:
            return self._objects[name]
        if name in self._aliases:
            return self._objects[self._aliases[name]]
        raise RegistryError(self.miss_message(name))

    def miss_message(self, name: Any, how: bool = True) -> str:
        """The sentence a miss raises: what was asked, close names, how to add (unless ``how=False``)."""
        close = self.suggest(str(name))
        msg = f"no {self._name} named {name!r} in the {self._name} registry"
        if close:
            msg += "; did you mean " + " or ".join(repr(c) for c in close) + "?"
        else:
            msg += f" ({len(self)} names; list them with `python runner.py list_layers=true`)."
        if self._how and how:
            msg += " " + self._how
        return msg

    @property
    def how_to_register(self) -> str:
        return self._how

    def suggest(self, name: str, n: int = 3) -> list[str]:
        """Closest registered names, case-insensitively."""
        names = self.names(aliases=True)
        lower = {k.lower(): k for k in names}
        hits = difflib.get_close_matches(name.lower(), list(lower), n=n, cutoff=0.6)
        return [lower[h] for h in hits]

    def names(self, aliases: bool = False) -> list[str]:
        """Every registered name, sorted (aliases too when asked)."""
        keys = set(self._objects)
        if aliases:
            keys |= set(self._aliases)
        return sorted(keys)

    def aliases_of(self, name: str) -> list[str]:
        return sorted(a for a, k in self._aliases.items() if k == name)

    def __contains__(self, name: object) -> bool:
        return name in self._objects or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._objects)

    def __repr__(self) -> str:
        return f"Registry({self._name!r}, {len(self)} names)"


def _describe(obj: Any) -> str:
    mod = getattr(obj, "__module__", "?")
    return f"{mod}.{getattr(obj, '__qualname__', repr(obj))}"


#: The layer registry: Keras' built-in layers by class name, the project's
#: layers, and whatever user modules listed under ``registry.modules`` add.
layer_registry = Registry(
    "layer",
    how_to_register=(
        "Add a layer with `@layers.register_layer` on a `keras.layers.Layer` subclass in your own "
        "module and list that module under `registry.modules` in the config "
        "(for example `python runner.py 'registry.modules=[my_pkg.my_layers]'`)."
    ),
)


def register_layer(cls=None, *, name: str | None = None, package: str = "layerlab"):
    """Register a layer class by name, with Keras (for safe-mode loading) and here.

    Use as ``@register_layer`` on a ``keras.layers.Layer`` subclass.  User
    layers should pass their own ``package`` so their Keras names cannot
    collide with the project's.
    """
    import keras

    def deco(c):
        key = name or c.__name__
        c = keras.saving.register_keras_serializable(package=package, name=key)(c)
        layer_registry.register(c, name=key)
        return c

    return deco if cls is None else deco(cls)
