"""The ``table`` option: a CSV, TSV or Parquet table through pandas.

``dataset.target`` is the label (or regression target) column; ``dataset.features`` the feature columns (null:
all others).  The loader keeps the raw values; the encoding is fitted after the split on the training rows only
(:class:`TableEncoder`, applied by :mod:`.splits`), so nothing of the validation or test rows informs it: numeric
columns are standardised by the training split's mean and standard deviation, and text, boolean and categorical
columns with at most ``max_categories`` values are one-hot encoded with the categories seen in training (a category
seen only in validation or test rows is all zeros: the "unknown" bucket). Anything else (dates, free text) is
refused with the column's name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from experiments.data.provenance import sha256_file
from experiments.data.raw import RawData
from experiments.data.targets import labels_and_task, required
from experiments.errors import DataError

_READERS = {".csv": "csv", ".tsv": "tsv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet"}


def read_table(path: Path):
    """The table as a pandas DataFrame, by the file's extension."""
    import pandas as pd

    kind = _READERS.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            f"cannot tell the table format of {path.name}",
            path="dataset.path",
            value=str(path),
            fix="use a .csv, .tsv or .parquet file",
        )
    try:
        if kind == "parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, sep="\t" if kind == "tsv" else ",")
    except Exception as exc:  # pandas raises many types for a broken file
        raise DataError(
            f"cannot read {path.name} as {kind} ({type(exc).__name__}: {str(exc).splitlines()[0]})",
            path="dataset.path",
            value=str(path),
            fix=f"check that the file is a valid {kind} table",
        ) from None


def load_table(opts, seed: int) -> RawData:
    """Features (float32, one-hot for categorical columns) and labels or a float target from one table.

    Args:
        opts: ``path``, ``target``, ``features``, ``max_categories``, ``task``.
        seed: unused (the data are fixed).
    """
    import pandas as pd

    path = Path(str(required(opts, "path", "data.csv"))).expanduser()
    required(opts, "target", "label")
    if not path.is_file():
        raise DataError(
            f"no such file: {path}",
            path="dataset.path",
            value=str(opts.path),
            fix="point dataset.path at an existing .csv or .parquet file",
        )
    df = read_table(path)
    if opts.target not in df.columns:
        raise DataError(
            f"{path.name} has no column {opts.target!r} (its columns: {', '.join(map(str, df.columns))})",
            path="dataset.target",
            value=opts.target,
            fix="set dataset.target to the label column's name",
        )
    features = list(opts.features) if opts.features is not None else [c for c in df.columns if c != opts.target]
    missing = [c for c in features if c not in df.columns]
    if missing or not features or opts.target in features:
        why = (
            f"no column {missing[0]!r} in {path.name}"
            if missing
            else "the target cannot be a feature"
            if opts.target in features
            else "no feature columns"
        )
        raise DataError(
            why,
            path="dataset.features",
            value=list(opts.features) if opts.features else None,
            fix=f"list columns of the table other than the target ({', '.join(map(str, df.columns))}), "
            "or set dataset.features=null",
        )
    table = df[features + [opts.target]]
    nan_cols = [str(c) for c in table.columns if table[c].isna().any()]
    if nan_cols:
        rows = int(table.isna().any(axis=1).sum())
        raise DataError(
            f"{rows} row(s) of {path.name} have missing values (NaN) in column(s) {', '.join(nan_cols)}",
            path="dataset.path",
            value=str(opts.path),
            fix="fill or drop those rows in the file (pandas: df.dropna()), or leave those columns out "
            "of dataset.features",
        )
    numeric, categorical = [], []
    for i, col in enumerate(features):
        s = table[col]
        if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
            if not (
                pd.api.types.is_object_dtype(s)
                or pd.api.types.is_string_dtype(s)
                or isinstance(s.dtype, pd.CategoricalDtype)
                or pd.api.types.is_bool_dtype(s)
            ):
                raise _neither(col, f"of dtype {s.dtype}", opts)
            n = s.astype(str).nunique()
            if n > opts.max_categories:
                raise _neither(
                    col,
                    f"a text column with {n} distinct values (more than dataset.max_categories={opts.max_categories})",
                    opts,
                )
            categorical.append(i)
        else:
            numeric.append(i)
    # Raw values (categories as text) in one object array: rows are split first, then encoded (TableEncoder).
    x = np.empty((len(table), len(features)), dtype=object)
    for i, col in enumerate(features):
        x[:, i] = table[col].astype(str).to_numpy() if i in categorical else table[col].to_numpy(dtype=np.float64)
    (y,), task, classes, class_names = labels_and_task([table[opts.target].to_numpy()], opts.task, "dataset.target")
    origin = {"source": str(path), "sha256": sha256_file(path)}  # make_splits adds the encoded ``features``
    return RawData(
        x=x,
        y=y,
        num_classes=classes,
        origin=origin,
        task=task,
        class_names=class_names,
        encode=TableEncoder([str(c) for c in features], numeric, categorical),
    )


class TableEncoder:
    """Numeric columns standardised, categorical ones one-hot encoded, both fitted on the training rows only.

    scikit-learn's ``ColumnTransformer`` of ``StandardScaler`` and ``OneHotEncoder(handle_unknown="ignore")``:
    a category the training rows do not hold encodes as all zeros. Output: float32, numeric columns first.
    """

    def __init__(self, columns: list[str], numeric: list[int], categorical: list[int]):
        from sklearn.compose import ColumnTransformer
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        self.columns = columns
        self._transformer = ColumnTransformer(
            [
                ("numeric", StandardScaler(), numeric),
                (
                    "categorical",
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float32),
                    categorical,
                ),
            ],
            sparse_threshold=0,
            verbose_feature_names_out=False,
        )

    def fit(self, x: np.ndarray) -> TableEncoder:
        self._transformer.fit(x)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._transformer.transform(x), dtype=np.float32)

    def get_feature_names_out(self) -> list[str]:
        """``size``, ``rooms``, ``color_blue``...: the numeric columns, then one per category seen in training."""
        return [str(n) for n in self._transformer.get_feature_names_out(self.columns)]


def _neither(col, what: str, opts) -> DataError:
    return DataError(
        f"the feature column {col!r} is neither numeric nor categorical: {what}",
        path="dataset.features",
        value=list(opts.features) if opts.features else None,
        fix=f"leave {col!r} out of dataset.features (list the columns to use), convert it to numbers in "
        "the file, or raise dataset.max_categories",
    )
