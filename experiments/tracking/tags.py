"""The names other code depends on: every MLflow tag this project writes or queries.

One module, so that the job that writes a tag, the sweep that queries it and
the analysis that reads it can never drift apart.  Runs are grouped by these
tags, not by environment variables, so the same query works under every
Hydra launcher (basic, joblib, Ray, submitit).
"""

PREFIX = "layerlab."

# What a run is.
ROLE = PREFIX + "role"  # "job" | "parent"
ROLE_JOB = "job"
ROLE_PARENT = "parent"

# Sweep membership (a parent and its children share SWEEP_ID; children also carry mlflow.parentRunId).
SWEEP_ID = PREFIX + "sweep_id"
SWEEP_DIR = PREFIX + "sweep_dir"  # the resolved sweep folder, for a person
SWEEP_DIR_RAW = PREFIX + "sweep_dir_raw"  # hydra.sweep.dir as the job sees it: how a job finds its parent
JOB_NUM = PREFIX + "job_num"
PARENT_RUN_ID = "mlflow.parentRunId"  # MLflow's own tag: nests the child under the parent in the UI

# How a run was made.
OVERRIDES = PREFIX + "overrides"  # JSON list of the job's command-line overrides
CONFIG_HASH = PREFIX + "config_hash"  # what determines the result (skip_finished, resume)
MODEL = PREFIX + "model"
DATASET = PREFIX + "dataset"
OUTPUT_DIR = PREFIX + "output_dir"
BACKEND = PREFIX + "backend"  # the Keras backend the job ran on (also the param `backend`)
BACKEND_VERSION = PREFIX + "backend_version"  # that backend's package version (tensorflow, jax, torch)
JIT_COMPILE = PREFIX + "jit_compile"  # "true" | "false" | "auto": XLA as the job compiled (null resolved per backend)
GIT_COMMIT = PREFIX + "git_commit"
GIT_DIRTY = PREFIX + "git_dirty"
MLFLOW_GIT_COMMIT = "mlflow.source.git.commit"

# The metric the run is judged by (derived from the config: experiments.config.metrics).
METRIC = PREFIX + "metric"  # Keras log name, e.g. "sparse_categorical_accuracy"
METRIC_MODE = PREFIX + "metric_mode"  # "max" | "min"

# Optuna search (hydra/sweeper=optuna): the study and the trial a run is.
STUDY = PREFIX + "study"  # on the parent and every trial's run: the study name
STUDY_STORAGE = PREFIX + "study_storage"  # on the parent: the Optuna storage URL (redacted)
TRIAL_NUMBER = "trial_number"  # on a trial's run: Optuna's trial number
BEST_TRIAL = PREFIX + "best_trial"  # on the parent: the best trial's number
PRUNED = PREFIX + "pruned"  # "true" on a trial stopped by the pruner (its run ends FINISHED)
PRUNED_EPOCH = PREFIX + "pruned_epoch"  # the last epoch it trained (1-based)

# What happened.
ERROR = PREFIX + "error"
WALL_TIME_S = PREFIX + "wall_time_s"
RESUMED = PREFIX + "resumed"
REOPENED = PREFIX + "reopened"  # on a parent run closed once and reopened (a continued study): how often
UPLOADED_LATER = PREFIX + "uploaded_later"
PARAM_NOTES = PREFIX + "param_notes"
MODEL_URI = PREFIX + "model_uri"
BEST_RUN = "best_run"  # on a sweep's parent (tag and param): the best child's name, short for the UI
BEST_RUN_ID = PREFIX + "best_run_id"  # on a sweep's parent: the child with the best validation metric
BEST_MODEL_URI = PREFIX + "best_model_uri"  # ... and that child's logged model
FUSED_GROUP = PREFIX + "fused_group"  # on each replica's run of a fused job (sweep.fuse_replicates): its group
FUSED_JOB = PREFIX + "fused_job"  # ... and the fused job's own Hydra job number (JOB_NUM is the replica's solo one)
ROUNDS = PREFIX + "rounds"  # on a sweep's parent (hydra/sweeper=rounds): the rounds it ran

# Liveness of a RUNNING run (experiments.tracking.heartbeat / experiments.tracking.doctor).
HEARTBEAT = PREFIX + "heartbeat"  # epoch seconds of the last beat (UTC), written at most every 30 s
HOST = PREFIX + "host"  # the machine the job runs on
PID = PREFIX + "pid"  # the job's process id there
PID_START = PREFIX + "pid_start"  # that process's start time (/proc): a reused pid is not "alive"
COMPLETING_COMMAND = PREFIX + "completing_command"  # on a sweep's parent: the command that finishes it
