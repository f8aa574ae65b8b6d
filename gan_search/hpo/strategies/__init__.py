"""How a search proposes and stops its trials: the Tune and Optuna objects of each strategy
(tuners.py: the table from strategy to its Tuner; sampled.py: Optuna's proposals with ASHA,
a budget's halving or none; pbt.py: a population), the stored Optuna study (study.py) and
what tells it (searcher.py, population.py)."""
