"""layerlab's Hydra sweeper: Optuna search with a maintained Optuna on hydra-core 1.3, pruning across processes."""
