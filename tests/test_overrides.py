"""One override parser (Hydra's): run names, group columns, the pre-check and the ledger read overrides alike."""

from __future__ import annotations

import pytest

from experiments.config.overrides import parse_override, parse_overrides


@pytest.mark.parametrize(
    "text,key,value,deleted,sweep",
    [
        ("model.activation=abs", "model.activation", "abs", False, False),
        ("+notes.owner=alice", "notes.owner", "alice", False, False),
        ("++training.epochs=3", "training.epochs", "3", False, False),
        ("~model.activation", "model.activation", None, True, False),
        ("~model.activation=abs", "model.activation", "abs", True, False),
        ("seed=0,1,2", "seed", "0,1,2", False, True),
        (
            "optimizer.learning_rate=tag(log, interval(1e-4, 1e-1))",
            "optimizer.learning_rate",
            "tag(log, interval(1e-4, 1e-1))",
            False,
            True,
        ),
        ("hydra/launcher=joblib", "hydra/launcher", "joblib", False, False),
        ("notes.text='a b'", "notes.text", "'a b'", False, False),
    ],
)
def test_hydra_reads_each_override(text, key, value, deleted, sweep):
    parsed = parse_override(text)
    assert (parsed.key, parsed.value, parsed.deleted, parsed.is_sweep) == (key, value, deleted, sweep)
    assert parsed.is_hydra == key.startswith("hydra")


def test_text_hydra_would_not_take_is_left_to_hydra():
    assert parse_override("bad=[") is None
    assert [p.key for p in parse_overrides(["a=1", "bad=[", "~b"])] == ["a", "b"]


def test_names_groups_and_ledger_agree_on_add_and_delete():
    from experiments.analysis.groups import _split_override
    from experiments.job.naming import child_run_name, constant_keys
    from experiments.launching.ledger import reusable_hydra_overrides

    assert (
        child_run_name(
            ["+model.activation=abs", "seed=1", "~training.shuffle"],
            ["model.activation=abs,relu", "seed=0,1", "~training.shuffle"],
        )
        == "activation=abs seed=1"
    )
    assert constant_keys(["+training.epochs=2", "seed=0,1"]) == {"training.epochs"}
    assert _split_override("~model.activation") == ("model.activation", "(deleted)")
    assert _split_override("+model.activation=abs") == ("model.activation", "abs")
    assert reusable_hydra_overrides(["hydra.sweep.dir=x", "hydra/launcher=joblib", "hydra.mode=MULTIRUN"]) == [
        "hydra/launcher=joblib"
    ]
