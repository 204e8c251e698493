"""A last layer of ``units: null`` sized by the data, and the loss the config already has."""

from __future__ import annotations

import numpy as np

from experiments.data.splits import DataSplits
from experiments.job.prepare import output_from_data

SPEC = {"layers": [{"type": "Dense", "units": 8}, {"type": "Dense", "units": None, "activation": "auto"}]}


def _splits(task: str, classes: int) -> DataSplits:
    x, y = np.zeros((4, 3), "float32"), np.arange(4) % classes
    return DataSplits(name="t", train=(x, y), val=(x, y), test=(x, y), num_classes=classes, input_shape=(3,),
                      task=task)


def test_two_classes_with_the_default_categorical_loss_get_two_softmax_units():
    last = output_from_data(SPEC, _splits("binary", 2), "sparse_categorical_crossentropy")["layers"][-1]
    assert last == {"type": "Dense", "units": 2, "activation": "softmax"}


def test_two_classes_with_binary_crossentropy_get_one_sigmoid_unit():
    last = output_from_data(SPEC, _splits("binary", 2), "binary_crossentropy")["layers"][-1]
    assert last == {"type": "Dense", "units": 1, "activation": "sigmoid"}


def test_several_classes_and_a_regression_target():
    assert output_from_data(SPEC, _splits("classification", 3), "sparse_categorical_crossentropy")["layers"][-1] == {
        "type": "Dense", "units": 3, "activation": "softmax"}
    assert output_from_data(SPEC, _splits("regression", 1), "mse")["layers"][-1] == {
        "type": "Dense", "units": 1, "activation": None}
