"""Errors that a researcher reads: one paragraph, the config path, the fix.

Every failure caused by the user's input (YAML, overrides, data files, a
tracking URI) is raised as a :class:`LayerlabError`.  The runner prints its
``str()`` as one short paragraph and exits non-zero, instead of showing a
traceback: the traceback is still available with ``LAYERLAB_DEBUG=1``.
"""

from __future__ import annotations


class LayerlabError(Exception):
    """A user-facing error: what is wrong, where (config path), how to fix it.

    Args:
        message: what is wrong, in one sentence.
        path: the dotted config path involved (``model.nodes.hidden.units``),
            or ``None`` when no single path is to blame.
        value: the offending value, shown as ``repr`` when given.
        fix: one sentence that says what to do instead.
    """

    exit_code = 2

    def __init__(self, message: str, *, path: str | None = None, value=..., fix: str | None = None):
        self.message = message
        self.path = path
        self.value = value
        self.fix = fix
        super().__init__(self.format())

    def format(self) -> str:
        parts = []
        if self.path:
            where = f"{self.path}"
            if self.value is not ...:
                where += f" = {self.value!r}"
            parts.append(f"{where}: {self.message}")
        else:
            parts.append(self.message)
        if self.fix:
            parts.append(f"Fix: {self.fix}")
        return " ".join(p.rstrip() if p.rstrip().endswith((".", "?", "!")) else p.rstrip() + "." for p in parts)


class ConfigError(LayerlabError):
    """The composed configuration is invalid (types, ranges, unknown keys)."""


class ModelGraphError(ConfigError):
    """The model graph in ``model`` cannot be built (names, edges, shapes)."""


class DataError(LayerlabError):
    """A dataset cannot be loaded or does not fit the model."""


class TrackingError(LayerlabError):
    """The MLflow tracking store or server is unusable."""


class TrainingError(LayerlabError):
    """Training stopped for a numerical reason (NaN or infinite loss)."""
