"""hydra/sweeper=rounds: replicates in rounds until the answer is clear (sweep.until.*)."""
