"""Checks made before Hydra starts, so the two commonest typos get a precise message.

* a YAML file under ``conf/`` that does not parse: Hydra would report it deep
  inside a traceback; here it is the file, the line and the problem;
* an unknown config group option (``model=lamda_mlp``): Hydra lists every
  option; here the closest ones are suggested.
"""

from __future__ import annotations

import difflib
import logging
import re
from pathlib import Path

import yaml

from experiments.config.overrides import parse_override, parse_overrides
from experiments.errors import ConfigError

log = logging.getLogger(__name__)

CONF = Path(__file__).resolve().parents[2] / "conf"
_OPTION_LIST = re.compile(r"^[\w\-/.,]+$")


def check_yaml_files(conf: Path = CONF) -> None:
    """Every YAML file of the config tree parses."""
    for path in sorted(conf.rglob("*.yaml")):
        try:
            yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(
                f"{path} is not valid YAML ({problem} at {where})",
                fix="fix the indentation or quoting there (a value with ': ' or '#' needs quotes)",
            ) from None


def check_group_options(args: list[str], conf: Path = CONF) -> None:
    """``group=option`` overrides name existing options (comma lists checked one by one).

    Hydra itself decides: each option is composed, and Hydra's own
    :class:`~hydra.errors.MissingConfigException` (with the options it knows)
    becomes one paragraph with the closest names.
    """
    if any(
        a in ("-cd", "--config-dir", "-cp", "--config-path") or a.startswith(("--config-dir=", "--config-path="))
        for a in args
    ):
        return  # other config sources can add options we cannot see from here
    from hydra import compose, initialize_config_dir
    from hydra.errors import MissingConfigException

    for parsed in parse_overrides(a for a in args if not a.startswith("-")):
        group, value = parsed.key, parsed.value
        if (
            value is None
            or "." in group
            or parsed.is_hydra
            or not (conf / group).is_dir()
            or not _OPTION_LIST.match(value)
        ):
            continue  # a value, a Hydra/plugin group, or a sweep function (glob, range): Hydra checks those
        for option in filter(None, value.split(",")):
            try:
                with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
                    compose("config", overrides=[f"{parsed.hydra.get_key_element()}={option}"])
            except MissingConfigException as exc:
                options = sorted(exc.options or [])
                close = difflib.get_close_matches(option, options, n=3, cutoff=0.5)
                hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
                raise ConfigError(
                    f"no option {option!r} in config group {group!r}{hint}",
                    path=group,
                    value=option,
                    fix=f"choose one of {', '.join(options)} (files in conf/{group}/), "
                    f"or add conf/{group}/{option}.yaml",
                ) from None
            except Exception as exc:  # anything else (a bad value elsewhere) is reported by the job itself
                log.debug("pre-check of %s=%s left to Hydra: %r", group, option, exc)
                continue


def check_sweep_overrides(args: list[str]) -> None:
    """Hydra's basic sweeper enumerates lists, ``range()`` and ``glob()``; it cannot sample ``interval()``.

    Left to Hydra, such a sweep fails inside the sweeper after the sweep has
    started; here it stops first, with the override and the way out.
    """
    if not any(a in ("-m", "--multirun") for a in args):
        return
    from hydra.core.override_parser.types import ValueType

    candidates = [a for a in args if "=" in a and not a.startswith("-")]
    maybe_parsed = [parse_override(a) for a in candidates]
    parsed = [o for o in maybe_parsed if o is not None]
    if len(parsed) < len(maybe_parsed):
        return  # a syntax error: Hydra's own message names it
    if any(o.key == "hydra/sweeper" and o.value != "basic" for o in parsed):
        return  # another sweeper decides what it accepts
    for override in parsed:
        if override.hydra.value_type == ValueType.INTERVAL_SWEEP:
            raise ConfigError(
                "Hydra's basic sweeper enumerates values (a,b,c, range(), glob()) and cannot sample an interval(...)",
                path=override.hydra.get_key_element(),
                value=override.value,
                fix="list the values to try (e.g. optimizer.learning_rate=0.0001,0.001,0.01), or use the search "
                "sweeper, which samples intervals (add hydra/sweeper=optuna)",
            )


def extra_config_dirs(args: list[str]) -> list[Path]:
    """Folders given with ``--config-dir``/``-cd`` (they are composed too)."""
    dirs = []
    for i, a in enumerate(args):
        if a in ("-cd", "--config-dir") and i + 1 < len(args):
            dirs.append(Path(args[i + 1]))
        elif a.startswith("--config-dir="):
            dirs.append(Path(a.split("=", 1)[1]))
    return dirs


def check(args: list[str]) -> None:
    for conf in [CONF, *extra_config_dirs(args)]:
        if conf.is_dir():
            check_yaml_files(conf)
    check_group_options(args)
    check_sweep_overrides(args)
