"""What a search found, from Tune's results to what a user reads: the rows (collect.py),
the confirmation over fresh seeds (confirm.py, noise.py), the iterations trained
(spend.py), the delivered generator (deliver.py), Optuna's importances and plots
(analysis.py), the report and the summary files (report.py, summary.py)."""
