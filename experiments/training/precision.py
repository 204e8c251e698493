"""``training.precision``: float32, or Keras' ``mixed_bfloat16`` policy where the hardware computes bfloat16.

Under ``mixed_bfloat16`` the layers compute in bfloat16 and keep their
variables in float32; the loss and the metrics are computed in float32 (Keras
casts the model's output). On a CPU only AMX (``amx_bf16``) and AVX-512-BF16
(``avx512_bf16``) compute bfloat16 products in hardware; elsewhere TensorFlow
emulates them, slower than float32, so the setting is refused there.
"""

from __future__ import annotations

from pathlib import Path

import keras

from experiments.config.schema import TrainingSchema
from experiments.errors import ConfigError

BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_bf16_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> list[str]:
    """The bfloat16 flags of this CPU (``amx_bf16``, ``avx512_bf16``) that ``/proc/cpuinfo`` lists."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return []
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return [f for f in BF16_CPU_FLAGS if f in flags]
    return []


def apply_precision(training: TrainingSchema, cpuinfo: Path = Path("/proc/cpuinfo")) -> None:
    """Set Keras' global dtype policy from ``training.precision``; call after ``keras.backend.clear_session``
    (which resets it).

    Raises:
        ConfigError: ``mixed_bfloat16`` on a machine with neither a GPU nor a CPU with bfloat16 instructions.
    """
    if training.precision == "mixed_bfloat16" and not cpu_bf16_flags(cpuinfo) and not _has_gpu():
        raise ConfigError(
            "needs bfloat16 hardware, which this machine lacks: its CPU lists neither amx_bf16 nor avx512_bf16 "
            "in /proc/cpuinfo and no GPU is visible, so TensorFlow would emulate bfloat16 products, slower than "
            "float32 (check with `grep -o -E 'amx_bf16|avx512_bf16' /proc/cpuinfo | sort -u`)",
            path="training.precision",
            value=training.precision,
            fix="use training.precision=float32 here, or run on a CPU with AMX or AVX-512-BF16 (Intel Sapphire "
            "Rapids or later, AMD Zen 4 or later) or a GPU",
        )
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if training.precision == "mixed_bfloat16" else "float32")


def _has_gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))
