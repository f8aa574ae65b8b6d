"""The engine: torch only. Data sources and splits, the DCGAN models, the trainer, the
scores. Nothing here imports ray, optuna or mlflow."""
