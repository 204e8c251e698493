"""A quiet start: TensorFlow's start-up lines are filtered out of a real run; LAYERLAB_DEBUG=1 shows them."""

from __future__ import annotations

import os
import re

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


@pytest.mark.parametrize("debug", [False, True], ids=["quiet", "LAYERLAB_DEBUG=1"])
def test_a_real_run_starts_quietly_unless_debugging(debug, tmp_path, store):
    env = {"LAYERLAB_DEBUG": "1"} if debug else {"LAYERLAB_DEBUG": "0"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "0"  # the user's level: the filter must not depend on it
    proc = run_cli(*TINY, "training.epochs=1", f"tracking.uri={store}", "tracking.log_model=false",
                   "tracking.log_plots=false", tmp_path=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "layerlab: FINISHED" in proc.stdout
    noise = PATTERNS.findall(_first_lines(proc))
    if debug:
        assert {"absl::InitializeLog", "oneDNN"} <= set(noise)
    else:
        assert noise == [], _first_lines(proc)
