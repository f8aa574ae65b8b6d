"""The search: Ray Tune + Optuna. The run, its Tuners, the trainable (the only caller of
`tune.report`), placement, cluster joining, confirmation, analysis, progress and the result
model. Importing this package loads nothing heavy; its modules do."""
