"""The ``layerlab`` command: the project's tools beside ``python runner.py``, as subcommands.

``layerlab compare|doctor|schema|upload|fetch|check-layer|list ...``.  Each subcommand is
the tool it names, with its own ``--help``; the ``python -m experiments.<tool>``
forms run the same code.  Training and sweeps stay ``python runner.py``
(Hydra's command line).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from experiments.process import configure_process

CONF = Path(__file__).resolve().parents[1] / "conf"

# subcommand -> (module with main(argv), one line of help)
TOOLS = {
    "compare": ("experiments.analysis.compare", "the statistical comparison of a sweep's runs (an experiment)"),
    "doctor": ("experiments.tracking.doctor", "close FAILED the runs left RUNNING by a process that died"),
    "schema": ("experiments.models.json_schema", "write the JSON Schema of the model YAML files"),
    "upload": ("experiments.tracking.upload", "finish a run whose tracking server went away (its output folder)"),
    "fetch": ("experiments.data.fetch", "fetch a dataset ahead of time (mnist) and print its file and digest"),
    "check-layer": (
        "experiments.check_layer",
        "build, train one step and round-trip layers on every installed Keras backend",
    ),
}
# What `layerlab list` can list: the layer registry, and the options of these config groups.
GROUPS = ("model", "dataset", "experiment", "optimizer", "training", "tracking", "sweep")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="layerlab",
        description="The project's tools beside `python runner.py` (training and sweeps).",
        epilog="`layerlab COMMAND --help` shows a command's own options. Train and sweep: python runner.py ...",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, text) in TOOLS.items():
        sub.add_parser(name, help=text, add_help=False)
    listing = sub.add_parser(
        "list",
        help="the registered layers and functions, or a config group's options",
        description="List the layer registry (python runner.py list_layers=...) or the options "
        "of a config group (what `group=option` accepts).",
    )
    listing.add_argument(
        "what",
        nargs="?",
        default="layers",
        help=f"layers (default), a layer name or shell pattern ('*Dense*': the matching layers' "
        f"arguments), or a config group: {', '.join(GROUPS)}",
    )
    listing.add_argument("pattern", nargs="?", default=None, help="after `layers`: a layer name or shell pattern")
    listing.add_argument(
        "--modules",
        nargs="*",
        default=[],
        metavar="MODULE",
        help="extra layer modules to import first (as registry.modules)",
    )
    return parser


def config_options(group: str, conf: Path = CONF) -> list[str]:
    """The options of config group ``group``: its ``conf/<group>/*.yaml`` file names."""
    return sorted(p.stem for p in (conf / group).glob("*.yaml"))


def _list(args: argparse.Namespace) -> int:
    if args.what in GROUPS:
        print(f"{args.what}: {', '.join(config_options(args.what))}")
        print(
            f"use one with: python runner.py {args.what}=<option>"
            if args.what != "experiment"
            else "use one with: python runner.py +experiment=<option>"
        )
        return 0
    import layers
    from experiments.errors import LayerlabError
    from experiments.job.listing import list_registry

    try:
        layers.load_modules(list(args.modules))
        print(list_registry(args.pattern if args.what == "layers" else args.what))
    except (LayerlabError, KeyError) as exc:
        print(f"layerlab: error: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: the process settings first (as ``runner.py``), then :func:`run`."""
    configure_process()
    return run(argv)


def run(argv: Sequence[str] | None = None) -> int:
    """Run ``layerlab`` with ``argv`` (default: the command line); the subcommand's exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in TOOLS:
        module = importlib.import_module(TOOLS[argv[0]][0])
        return int(module.main(argv[1:]) or 0)
    return _list(_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
