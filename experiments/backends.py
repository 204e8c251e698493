"""Which Keras backend a process runs on (TensorFlow, JAX, PyTorch), and what a run records about it.

Keras 3 reads ``KERAS_BACKEND`` once, when it is imported, and cannot switch
afterwards without reloading itself under the modules that hold its classes.
So the backend is a property of a *process*: :mod:`experiments.cli` sets it
from the job's ``backend`` key before Keras is imported, and a job whose
backend differs from the one already loaded in its process (the second
backend of ``-m backend=tensorflow,jax`` in a reused launcher worker) runs in
a fresh process instead (:func:`experiments.cli.run_on_backend`).

This module imports no Keras itself: asking which backend is loaded must not
load one.
"""

from __future__ import annotations

import sys
from importlib import metadata

from experiments.config.schema import BACKENDS
from experiments.errors import LayerlabError
from experiments.tracking import tags

# The distributions that provide each backend (their version is recorded).
DISTRIBUTIONS = {"tensorflow": ("tensorflow", "tensorflow-cpu"), "jax": ("jax",), "torch": ("torch",)}
INSTALL = {
    "tensorflow": "pip install tensorflow-cpu",
    "jax": "pip install -e '.[jax]' (jax[cpu])",
    "torch": "make install-torch (pip install -e '.[torch]')",
}


def loaded_backend() -> str | None:
    """The backend Keras was imported with in this process; None when Keras is not imported yet."""
    keras = sys.modules.get("keras")
    if keras is None or not hasattr(keras, "config"):
        return None
    return str(keras.config.backend())


def _installed(backend: str) -> bool:
    """Whether the backend's package is installed, asked of its distribution's metadata: a ``find_spec`` would
    consume the quiet-start import hook of ``tensorflow`` (:mod:`experiments.process`) without importing it."""
    return backend_version(backend) != "?"


def installed_backends() -> list[str]:
    """The backends whose package is installed here, in :data:`BACKENDS` order."""
    return [b for b in BACKENDS if _installed(b)]


def require_installed(backend: str) -> None:
    """Refuse a backend whose package is missing, before Keras tries to import it.

    Raises:
        LayerlabError: naming the key and the install command.
    """
    if not _installed(backend):
        raise LayerlabError(
            f"Keras backend {backend!r} is not installed in this environment "
            f"(installed: {', '.join(installed_backends()) or 'none'})",
            path="backend",
            value=backend,
            fix=f"install it ({INSTALL[backend]}) or choose another backend",
        )


def backend_version(backend: str) -> str:
    """The installed version of the backend's package ('?' when unknown)."""
    for dist in DISTRIBUTIONS[backend]:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return "?"


def backend_tags(jit_compile) -> dict[str, str]:
    """What every run records about the backend it ran on: the backend, its version, XLA on or off.

    Args:
        jit_compile: the effective ``training.jit_compile`` (the per-backend default resolved).
    """
    backend = loaded_backend() or "tensorflow"
    return {
        tags.BACKEND: backend,
        tags.BACKEND_VERSION: backend_version(backend),
        tags.JIT_COMPILE: str(jit_compile).lower(),
    }
