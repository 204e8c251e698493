"""layerlab's entry point: `python runner.py [overrides]` or `python runner.py -m [sweep overrides]`.

A thin Hydra wrapper: Hydra composes `conf/config.yaml` with the overrides and
hands each job's config to `experiments.cli.run_from_hydra`. See README.md.
"""

from experiments.process import configure_process

configure_process()  # before TensorFlow or MLflow are imported

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from experiments.cli import guarded, run_from_hydra  # noqa: E402


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig):
    return run_from_hydra(cfg)


if __name__ == "__main__":
    guarded(main, precheck=True)
