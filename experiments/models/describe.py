"""Describe a built model: its summary table as text, and its parameter counts.

:func:`summary_text` draws the table of ``model.summary()`` (same columns,
same layout) itself, at a fixed width.  Keras' own summary prints through a
``rich`` console whose width comes from the terminal or ``$COLUMNS`` (80 when
there is no terminal), which would clip the table; rendering into our own
console of a given width needs no environment variable.  The rows come from
the call graph Keras' ``print_summary`` reads, through the Keras adapter
(:mod:`experiments.adapters.keras_internals`: Keras has no public equivalent);
``tests/test_models_summary.py`` compares the text with Keras' own summary.
"""

from __future__ import annotations

import io
import math
import re

import keras
import rich.console
import rich.table
import rich.text

from experiments.adapters.keras_internals import inbound_nodes, nodes_by_depth, tensor_origin

#: Width of the table (Keras' ``line_length``) and of the console it is drawn on.
LINE_LENGTH = 110
CONSOLE_WIDTH = 120


def count_params(model: keras.Model) -> dict[str, int]:
    """Total / trainable / non-trainable parameter counts (optimizer state excluded)."""
    trainable = sum(int(keras.ops.size(w)) for w in model.trainable_weights)
    non_trainable = sum(int(keras.ops.size(w)) for w in model.non_trainable_weights)
    return {"total": trainable + non_trainable, "trainable": trainable, "non_trainable": non_trainable}


def summary_text(model: keras.Model) -> str:
    """The ``model.summary()`` table as a string (for printing and for an MLflow artifact)."""
    layers, graph_nodes = _layers_and_nodes(model)
    if graph_nodes is None:
        header, positions = (
            [("Layer (type)", "left"), ("Output Shape", "left"), ("Param #", "right")],
            [0.45, 0.80, 1.0],
        )
    else:
        header = [("Layer (type)", "left"), ("Output Shape", "left"), ("Param #", "right"), ("Connected to", "left")]
        positions = [0.3, 0.56, 0.74, 1.0]
    edges = [int(p * LINE_LENGTH) for p in positions]
    widths = [b - a for a, b in zip([0] + edges, edges)]
    table = rich.table.Table(
        *(rich.table.Column(name, justify=justify, width=w) for (name, justify), w in zip(header, widths)),
        width=LINE_LENGTH,
        show_lines=True,
    )
    for layer in layers:
        row = [f"{layer.name} ({type(layer).__name__})", _output_shape(layer), _param_cell(layer)]
        if graph_nodes is not None:
            row.append(_connections(layer, graph_nodes))
        table.add_row(*(rich.text.Text(cell) for cell in row))

    trainable, non_trainable = model.trainable_weights, model.non_trainable_weights
    optimizer = getattr(model, "optimizer", None)
    optimizer_vars = (
        optimizer.variables if getattr(model, "compiled", False) and optimizer and optimizer.built else None
    )
    lines = [
        f'Model: "{model.name}"',
        table,
        _count_line("Total params", trainable + non_trainable + (optimizer_vars or [])),
        _count_line("Trainable params", trainable),
        _count_line("Non-trainable params", non_trainable),
    ]
    if optimizer_vars is not None:
        lines.append(_count_line("Optimizer params", optimizer_vars))

    out = io.StringIO()
    # Width *and* height given: rich then consults neither the terminal nor the environment.
    console = rich.console.Console(
        file=out,
        width=CONSOLE_WIDTH,
        height=25,
        force_terminal=False,
        color_system=None,
        highlight=False,
        markup=False,
        emoji=False,
    )
    for line in lines:
        console.print(line)
    # The text ends with an empty line, as the summary always has (it reads as a paragraph break when printed).
    return out.getvalue() + "\n"


def _layers_and_nodes(model: keras.Model) -> tuple[list, list | None]:
    """(the rows' layers, the model's call nodes when it is drawn as a graph, else None).

    As in Keras: a functional model is drawn as a graph (with a "Connected to"
    column) unless it is a chain: one node per depth, each with one input,
    and no layer called twice.
    """
    levels = None if isinstance(model, keras.Sequential) else nodes_by_depth(model)
    if levels is None:
        return model.layers, None
    nodes = [n for level in levels for n in level]
    chain = all(len(level) == 1 and len(keras.tree.flatten(level[0].input_tensors)) <= 1 for level in levels)
    chain = chain and all(sum(n in nodes for n in inbound_nodes(layer)) <= 1 for layer in model.operations)
    return model.operations, None if chain else nodes


def _output_shape(layer) -> str:
    nodes = inbound_nodes(layer)
    if not nodes:
        return "?"
    shapes = keras.tree.map_structure(lambda t: f"({', '.join(map(str, t.shape))})", nodes[-1].output_tensors)
    flat = keras.tree.flatten(shapes)
    return flat[0] if len(flat) == 1 else str(shapes).replace("'", "")


def _param_cell(layer) -> str:
    if not hasattr(layer, "built"):
        return "0"
    if not layer.built:
        return "0 (unbuilt)"
    return f"{layer.count_params():,}"


def _connections(layer, graph_nodes: list) -> str:
    """``name[node][tensor]`` of each tensor the layer is called on in this model."""
    sources = []
    for node in inbound_nodes(layer):
        if node in graph_nodes:
            for t in node.input_tensors:
                op, node_index, tensor_index = tensor_origin(t)
                sources.append(f"{op.name}[{node_index}][{tensor_index}]")
    return ", ".join(sources) or "-"


def _count_line(label: str, weights: list) -> str:
    count = sum(math.prod(w.shape) for w in weights)
    return f" {label}: {count:,} ({_readable_bytes(_bytes(weights))})"


def _bytes(weights: list) -> float:
    """Memory of the distinct weights, from their shapes and dtypes (``bool`` counts one bit, as in Keras)."""
    bits = 0
    for w in {id(w): w for w in weights}.values():
        dtype = keras.backend.standardize_dtype(w.dtype)
        bits += math.prod(w.shape) * (1 if dtype == "bool" else int(re.search(r"\d+", dtype).group()))
    return bits / 8


def _readable_bytes(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024:
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} PB"
