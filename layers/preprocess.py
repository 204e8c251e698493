"""``PreProcess`` (lecture 5.4): flatten images and scale pixels to [0, 1] inside the model."""

from __future__ import annotations

import math

import keras
from keras import ops

from layers.registry import register_layer


@register_layer
class PreProcess(keras.layers.Layer):
    """Reshape each sample to a vector, cast to float32 and divide by 255.

    Normalising inside the model lets the data stay uint8 (4x less memory than
    float32), as the lecture recommends.  Unlike the lecture's version,
    ``output_dim`` may be omitted: it is then inferred from the input shape in
    ``build()``; when given it is checked against it.

    Args:
        output_dim: length of the output vector (the product of the input's
            non-batch dimensions), or ``None`` to infer it.
        scale: the divisor, 255 for 8-bit images.
        **kwargs: base ``Layer`` arguments.
    """

    def __init__(self, output_dim: int | None = None, scale: float = 255.0, **kwargs):
        super().__init__(**kwargs)
        if output_dim is not None and (
            isinstance(output_dim, bool) or not isinstance(output_dim, int) or output_dim < 1
        ):
            raise ValueError(f"PreProcess: `output_dim` must be a positive integer or None, got {output_dim!r}")
        if not isinstance(scale, (int, float)) or scale == 0:
            raise ValueError(f"PreProcess: `scale` must be a non-zero number, got {scale!r}")
        self.output_dim = output_dim
        self.scale = float(scale)

    def build(self, input_shape):
        dims = tuple(input_shape[1:])
        if any(d is None for d in dims):
            if self.output_dim is None:
                raise ValueError(
                    f"PreProcess: cannot infer output_dim from input shape {tuple(input_shape)}; pass output_dim"
                )
            return
        size = math.prod(dims)
        if self.output_dim is None:
            self.output_dim = size
        elif self.output_dim != size:
            raise ValueError(
                f"PreProcess: output_dim={self.output_dim} but each input sample has {size} values "
                f"(shape {dims}); set output_dim={size} or leave it out to infer it"
            )

    def call(self, inputs):
        # Cast before dividing: uint8 / 255 would otherwise go through float64 in TF.
        flat = ops.reshape(ops.cast(inputs, "float32"), (-1, self.output_dim))
        return flat / self.scale

    def compute_output_shape(self, input_shape):
        dim = self.output_dim
        if dim is None:
            dim = math.prod(input_shape[1:])
        return (input_shape[0], dim)

    def get_config(self):
        return {**super().get_config(), "output_dim": self.output_dim, "scale": self.scale}
