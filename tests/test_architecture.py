"""The house rules of experiments/, layers/ and hydra_plugins/, checked on the source itself.

Every import statement counts, also those inside functions: the package
graph must be one-way (no circle at any depth), layers/ never imports
experiments/, no module outgrows one job, and process-wide state is set in
one documented place only (experiments/process.py).
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("layers", "experiments", "hydra_plugins")
MAX_LINES = 450  # the same bound as ../shared/tools/import_graph.py


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            mods[name.removesuffix(".__init__")] = path
    return mods


MODULES = _modules()


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> set[str]:
    base = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                b = base
                for _ in range(node.level - 1):
                    b = b.rpartition(".")[0]
                mod = f"{b}.{mod}" if mod else b
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            r = _resolve(t)
            # a package and its own submodules are one unit
            if r and r != module and not r.startswith(module + ".") and not module.startswith(r + "."):
                found.add(r)
    return found


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def test_no_import_circle_at_any_depth():
    try:
        order = list(graphlib.TopologicalSorter(GRAPH).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"import circle: {' -> '.join(exc.args[1])}")
    assert set(order) >= set(MODULES)


def test_layers_never_import_experiments():
    back = [
        f"{m} -> {t}" for m, ts in GRAPH.items() if m.startswith("layers") for t in ts if t.startswith("experiments")
    ]
    assert back == []


@pytest.mark.parametrize(
    "lower,upper",
    [
        ("experiments.data", "experiments.job"),
        ("experiments.models", "experiments.job"),
        ("experiments.training", "experiments.job"),
        ("experiments.tracking", "experiments.job"),
        ("experiments.tracking", "experiments.sweeps"),
        ("experiments.analysis", "experiments.sweeps"),
        ("experiments.job", "experiments.sweeps"),
        ("experiments.config", "experiments.job"),
        ("experiments.data", "experiments.models"),
        ("experiments.tracking", "experiments.training"),
        ("experiments.launching", "experiments.sweeps"),
        ("experiments.job", "experiments.launching"),
        ("experiments.analysis", "experiments.launching"),
        ("experiments.tracking", "experiments.launching"),
    ],
)
def test_data_flows_one_way(lower, upper):
    """A lower layer never imports an upper one (README, Architecture)."""
    wrong = [f"{m} -> {t}" for m, ts in GRAPH.items() if m.startswith(lower) for t in ts if t.startswith(upper)]
    assert wrong == []


def test_the_fused_engine_is_one_package_used_through_its_api():
    """experiments/training/fused/ holds the whole fused engine; the rest of experiments/ imports only the package."""
    assert not any(m.startswith("experiments.training.fused_") for m in MODULES)
    assert {
        "experiments.training.fused.engine",
        "experiments.training.fused.callbacks",
        "experiments.training.fused.loss",
        "experiments.training.fused.optimizer",
    } <= set(MODULES)
    inside = [
        f"{m} -> {t}"
        for m, ts in GRAPH.items()
        if not m.startswith("experiments.training.fused")
        for t in ts
        if t.startswith("experiments.training.fused.")
    ]
    assert inside == []


def test_plugins_sit_above_everything_and_adapters_below():
    """hydra_plugins/ is imported by Hydra only (like runner.py); the library adapters import nothing of ours."""
    up = [
        f"{m} -> {t}"
        for m, ts in GRAPH.items()
        if not m.startswith("hydra_plugins")
        for t in ts
        if t.startswith("hydra_plugins")
    ]
    adapters = [f"{m} -> {t}" for m, ts in GRAPH.items() if m.startswith("experiments.adapters") for t in ts]
    assert up == [] and adapters == []


def test_no_module_reads_another_packages_private_globals():
    """Shared state is passed as objects (experiments.sweeps.current_sweep()), never read with getattr(module, "_x")."""
    found = []
    for module, path in MODULES.items():
        if module.startswith("experiments.adapters"):  # the one place for a library's private attributes
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and ast.unparse(node.func) == "getattr"
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and str(node.args[1].value).startswith("_")
                and not str(node.args[1].value).startswith("__")
            ):
                found.append(f"{module}: {ast.unparse(node)}")
    assert found == []


def test_config_is_read_by_key_only_in_experiments_config():
    """Code below the job reads the typed config (JobConfig); only experiments/config looks keys up by path."""
    found = []
    for module, path in MODULES.items():
        if module.startswith("experiments.config"):
            continue
        for call in _calls(ast.parse(path.read_text())):
            if call in ("select", "OmegaConf.select", "_sel"):
                found.append(f"{module}: {call}")
    assert found == []


def test_the_run_lifecycle_is_one_class():
    """Solo and fused jobs both keep their MLflow run in a RunRecord; the fused job never borrows the solo job's."""
    assert "experiments.job.run_record" in GRAPH["experiments.job.tracked"]
    assert "experiments.job.run_record" in GRAPH["experiments.job.fused_job"]
    assert "experiments.job.tracked" not in GRAPH["experiments.job.fused_job"]
    opened = [m for m, ts in GRAPH.items() if "experiments.tracking.experiment" in ts]
    assert {"experiments.job.tracked", "experiments.job.fused_job", "experiments.sweeps.callback"} <= set(opened)
    ensure = [
        m
        for m, ts in GRAPH.items()
        if "experiments.tracking.store" in ts
        and m.startswith("experiments.job")
        and "ensure_experiment" in MODULES[m].read_text()
    ]
    assert ensure == []


def test_every_module_has_one_job_and_stays_small():
    big = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert big == {}


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield ast.unparse(node.func)
        elif isinstance(node, (ast.Assign, ast.AugAssign)):
            for target in getattr(node, "targets", [getattr(node, "target", None)]):
                if isinstance(target, ast.Subscript):
                    yield f"{ast.unparse(target.value)}[]="


GLOBAL_STATE = (
    "os.environ.setdefault",
    "os.environ.update",
    "os.environ[]=",
    "os.putenv",
    "matplotlib.use",
    "socket.setdefaulttimeout",
    "warnings.filterwarnings",
    "logging.basicConfig",
    "gc.freeze",
    "gc.disable",
)


def test_process_wide_state_is_set_in_one_place():
    offenders = []
    for module, path in MODULES.items():
        if module == "experiments.process":
            continue
        for call in _calls(ast.parse(path.read_text())):
            if call in GLOBAL_STATE:
                offenders.append(f"{module}: {call}")
    assert offenders == []


def test_runner_is_thin_and_configures_the_process_first():
    source = (ROOT / "runner.py").read_text()
    body = ast.parse(source).body[1:]  # after the docstring
    assert ast.unparse(body[0]) == "from experiments.process import configure_process"
    assert ast.unparse(body[1]) == "configure_process()"
    assert len(source.splitlines()) < 40
