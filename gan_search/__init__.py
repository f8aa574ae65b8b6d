"""gan-search: Ray Tune + Optuna hyperparameter search for DCGANs, tracked in MLflow."""

__version__ = "0.1.0"
