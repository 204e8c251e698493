"""The picture of a built model: ``keras.utils.model_to_dot`` with shapes and layer types, blocks boxed.

Every layer is a box with its name, its type, its activation and its input and
output shapes; the layers made by one use of a ``blocks:`` entry are drawn inside
a dashed frame named ``<use>: <block>`` (nested uses nested), since the built
model no longer holds blocks (:mod:`experiments.models.blocks`).  Graphviz's
``dot`` program draws it (Debian's ``graphviz`` package, installed by ``make
install`` through ``scripts/install_graphviz.sh``); without it
:func:`draw_model` says in one line how to install it and draws nothing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import keras

from experiments.models.blocks import blocks_of

PICTURE = "model.png"
MISSING = (
    "layerlab: no model picture: Graphviz's `dot` program is not installed; install it with "
    "`sudo apt-get install graphviz` (Debian/Ubuntu; `make install` does it), `brew install graphviz` "
    "(macOS) or `conda install graphviz`"
)


def graphviz_available() -> bool:
    """Whether ``pydot`` imports and Graphviz's ``dot`` is on PATH (pydot runs it by that name)."""
    try:
        import pydot  # noqa: F401  (keras.utils.model_to_dot needs it)
    except ImportError:
        return False
    return shutil.which("dot") is not None


def draw_model(model: keras.Model, path: Path | str, dpi: int = 96) -> Path | None:
    """Write the picture of ``model`` to ``path`` (PNG); ``None`` and one printed line when Graphviz is missing."""
    if not graphviz_available():
        print(MISSING, flush=True)
        return None
    path = Path(path)
    try:
        dot = model_dot(model, dpi)
        path.parent.mkdir(parents=True, exist_ok=True)
        dot.write(str(path), format="png")
    except Exception as exc:  # a picture is never worth a failed run: say why, go on
        print(
            f"layerlab: no model picture: {type(exc).__name__}: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}",
            flush=True,
        )
        return None
    return path


def model_dot(model: keras.Model, dpi: int = 96):
    """The ``pydot`` graph of the picture (needs ``pydot``, not Graphviz): Keras' boxes, blocks as clusters."""
    dot = keras.utils.model_to_dot(
        model,
        show_shapes=True,
        show_layer_names=True,
        show_layer_activations=True,
        expand_nested=True,
        dpi=dpi,
        rankdir="TB",
    )
    _frame_blocks(dot, model)
    return dot


def _frame_blocks(dot, model: keras.Model) -> None:
    """Move each block use's layer nodes into a dashed cluster (nested for nested uses)."""
    import pydot

    clusters: dict[tuple[str, ...], pydot.Cluster] = {}

    def cluster(chain: tuple[str, ...]) -> pydot.Cluster:
        if chain not in clusters:
            c = pydot.Cluster(
                f"block{len(clusters)}",
                label=chain[-1],
                style="dashed",
                labeljust="l",
                fontname="Helvetica",
                fontsize="16",
            )
            (cluster(chain[:-1]) if len(chain) > 1 else dot).add_subgraph(c)
            clusters[chain] = c
        return clusters[chain]

    for layer in model.layers:
        chain = blocks_of(model).get(layer.name)
        nodes = dot.get_node(str(id(layer))) if chain else []
        if nodes:  # model_to_dot names each node by id(layer)
            dot.del_node(str(id(layer)))
            cluster(chain).add_node(nodes[0])
