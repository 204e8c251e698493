"""``training.precision``: float32 or Keras' mixed_bfloat16, refused without bfloat16 hardware, recorded in the run."""

from __future__ import annotations

import keras
import mlflow
import pytest

from experiments.config.schema import validate
from experiments.errors import ConfigError
from experiments.job.context import JobContext
from experiments.job.prepare import prepare
from experiments.job.tracked import TrackedJob
from experiments.training.compile import compile_model
from experiments.training.precision import apply_precision, cpu_bf16_flags
from experiments.training.runtime import setup_runtime
from tests.conftest import compose

HAS_BF16 = bool(cpu_bf16_flags())


def _cpuinfo(tmp_path, flags: str):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n")
    return path


def test_mixed_bfloat16_is_refused_on_a_cpu_without_bfloat16(tmp_path):
    cpuinfo = _cpuinfo(tmp_path, "fpu sse2 avx2 avx512f fma")
    assert cpu_bf16_flags(cpuinfo) == []
    job = validate(compose("training.precision=mixed_bfloat16"))
    with pytest.raises(ConfigError, match="training.precision") as exc:
        apply_precision(job.training, cpuinfo)
    assert "amx_bf16" in str(exc.value) and "training.precision=float32" in str(exc.value)
    apply_precision(validate(compose()).training, cpuinfo)  # float32 needs nothing
    assert keras.mixed_precision.global_policy().name == "float32"


def test_the_cpu_flags_are_read(tmp_path):
    assert cpu_bf16_flags(_cpuinfo(tmp_path, "fpu avx512_bf16 amx_tile amx_bf16")) == ["amx_bf16", "avx512_bf16"]
    with pytest.raises(ConfigError, match="training.precision"):
        validate(compose("training.precision=float16"))


@pytest.mark.skipif(not HAS_BF16, reason="this CPU has neither amx_bf16 nor avx512_bf16")
def test_a_mixed_bfloat16_run_computes_in_bfloat16_and_records_it(tmp_path):
    import numpy as np

    store = f"sqlite:///{tmp_path}/mlflow.db"
    cfg = compose(
        "dataset=synthetic",
        "dataset.limit=300",
        "training.epochs=2",
        "training.batch_size=64",
        "tracking.log_model=false",
        "tracking.log_plots=false",
        f"tracking.uri={store}",
        "training.precision=mixed_bfloat16",
    )
    try:
        result = TrackedJob(cfg, JobContext(output_dir=str(tmp_path / "out"))).run()
        job = validate(cfg)
        setup_runtime(job)
        data, model = prepare(job)
        compile_model(model, job)
        dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
        assert {layer.compute_dtype for layer in dense} == {"bfloat16"}
        assert {w.dtype for layer in dense for w in layer.weights} == {"float32"}
        loss = model.evaluate(*data.val, verbose=0, return_dict=True)["loss"]
        assert np.isfinite(loss)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert result.status == "FINISHED"
    run = mlflow.MlflowClient(store).get_run(result.run_id)
    assert run.data.params["training.precision"] == "mixed_bfloat16"
    assert np.isfinite(run.data.metrics["loss"])
