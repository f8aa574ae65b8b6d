"""The search: Ray Tune + Optuna, in three rooms under the run (run.py), the trainable
(trainable.py, the only caller of ``tune.report``) and the study dashboard (dashboard.py):
``strategies/`` (how trials are proposed and stopped), ``outcome/`` (what the search found
and how it is told) and ``driver/`` (paths, names, placement, cluster, progress, resume).
Inside search: driver and strategies never import outcome; nothing imports run.py, the
trainable or the dashboard but the CLI and the app. Importing this package loads nothing
heavy; its modules do."""
