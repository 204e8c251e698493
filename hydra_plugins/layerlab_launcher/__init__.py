"""layerlab's Hydra launcher: long-lived worker processes that survive the death of one of them."""
