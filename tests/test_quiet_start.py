"""A quiet start: TensorFlow's start-up lines are filtered out of a real run; LAYERLAB_DEBUG=1 shows them."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from experiments.process import NOISE, _FilteredStderr, replay
from tests.conftest import TINY, run_cli

PATTERNS = re.compile(r"absl::InitializeLog|oneDNN|cudart_stub|cuInit|cpu_feature_guard")

# What tensorflow-cpu 2.21 printed here on import and first device listing (timestamps shortened).
MEASURED = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1795818926.397281    9376 port.cc:153] oneDNN custom operations are on. You may see slightly different numerical results.
I0000 00:00:1795818926.397611    9376 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
I0000 00:00:1795818468.777001   32556 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use available CPU instructions in performance-critical operations.
To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow with the appropriate compiler flags.
E0000 00:00:1795818930.728791    9376 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)
"""


def test_every_measured_start_up_line_is_noise_and_other_lines_are_kept():
    assert all(NOISE.match(line) for line in MEASURED.splitlines())
    useful = "UserWarning: something the user can fix\nTraceback (most recent call last):\n"
    assert replay(MEASURED + useful) == useful


def test_the_filter_window_replays_what_is_not_noise(capfd):
    with _FilteredStderr():
        os.write(2, MEASURED.encode())
        os.write(2, b"kept: a line that matters\n")
    err = capfd.readouterr().err
    assert err == "kept: a line that matters\n"


def _first_lines(proc, n: int = 40) -> str:
    return "\n".join(proc.stderr.splitlines()[:n] + proc.stdout.splitlines()[:n])


def _message(line: str) -> str:
    """A start-up line without its timestamp and thread id (``I0000 00:00:17.3  9376 port.cc:153] ...``)."""
    return line.split("] ", 1)[1] if "] " in line else line


# The user's level (the filter must not depend on it), and oneDNN on so that TensorFlow has something to say
# on every x86 CPU; which lines it prints still depends on the machine, so the test compares with them.
_LOUD = {"TF_CPP_MIN_LOG_LEVEL": "0", "TF_ENABLE_ONEDNN_OPTS": "1"}


@pytest.fixture(scope="module")
def tensorflow_start_up_noise() -> set[str]:
    """What a bare ``import tensorflow`` (plus the device listing) prints here that the filter calls noise."""
    proc = subprocess.run(
        [sys.executable, "-c", "import tensorflow as tf; tf.config.list_physical_devices()"],
        env={**os.environ, **_LOUD, "LAYERLAB_DEBUG": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {_message(line) for line in proc.stderr.splitlines() if NOISE.match(line)}


@pytest.mark.parametrize("debug", [False, True], ids=["quiet", "LAYERLAB_DEBUG=1"])
def test_a_real_run_starts_quietly_unless_debugging(debug, tmp_path, store, tensorflow_start_up_noise):
    env = {**_LOUD, "LAYERLAB_DEBUG": "1" if debug else "0"}
    # class_mlp: its ResidualDense (act(x + dense(...))) made Grappler's remapper write a graph TensorFlow's MLIR
    # pass rejected, one `E0000 ... tfg_optimizer_hook` line per traced function; not filtered, not there at all.
    proc = run_cli(
        *TINY,
        "model=class_mlp",
        "training.epochs=1",
        f"tracking.uri={store}",
        "tracking.log_model=false",
        "tracking.log_plots=false",
        tmp_path=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "layerlab: FINISHED" in proc.stdout
    assert "tfg_optimizer_hook" not in proc.stderr + proc.stdout
    shown = {_message(line) for line in _first_lines(proc).splitlines()}
    if debug:
        # Nothing is filtered: every start-up line TensorFlow itself prints on this machine reaches the user.
        assert tensorflow_start_up_noise <= shown, tensorflow_start_up_noise - shown
    else:
        assert PATTERNS.findall(_first_lines(proc)) == [], _first_lines(proc)
        assert not tensorflow_start_up_noise & shown, tensorflow_start_up_noise & shown


@pytest.mark.slow
@pytest.mark.parametrize("fused", [False, True], ids=["jobs", "fused groups"])
def test_a_sweep_in_one_process_prints_its_own_lines_only(fused, tmp_path, store):
    """Hydra's basic launcher runs every job (every fused group) in one process, each with its own model: their
    steps and epoch orders are traced once each, and TensorFlow's "triggered tf.function retracing" warning
    (which counted them together) is not on the user's screen."""
    proc = run_cli(
        "-m",
        "hydra/launcher=basic",
        "model.activation=abs,relu",
        "seed=0,1,2",
        *TINY,
        *(["sweep.fuse_replicates=true"] if fused else []),
        "tracking.log_model=false",
        "tracking.log_plots=false",
        f"tracking.uri={store}",
        tmp_path=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = proc.stdout.index("layerlab: sweep ", proc.stdout.index("layerlab: job "))  # the sweep's end line
    before = [line for line in (proc.stderr + proc.stdout[:summary]).splitlines() if line.strip()]
    assert all(line.startswith("layerlab: ") for line in before), before
    assert "retracing" not in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "value,on",
    [
        ("1", True),
        ("true", True),
        ("Yes", True),
        ("on", True),
        ("0", False),
        ("false", False),
        ("", False),
        (None, False),
    ],
)
def test_a_layerlab_switch_has_one_meaning_of_true(monkeypatch, value, on):
    from experiments.process import debug_enabled, env_flag, teardown_may_be_skipped

    for name in ("LAYERLAB_DEBUG", "LAYERLAB_NO_FAST_EXIT"):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert env_flag("LAYERLAB_DEBUG") is on and debug_enabled() is on
    if sys.getprofile() is None and sys.gettrace() is None:  # not under coverage or a debugger
        assert teardown_may_be_skipped() is (not on)
