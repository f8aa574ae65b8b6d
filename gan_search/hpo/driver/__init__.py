"""What drives a search on a machine or a cluster, besides its strategy: where it lives
(paths.py) and what it may be called (names.py), what is checked and set up before any
trial (prepare.py), what trials ask Ray for (placement.py), joining a cluster
(cluster.py), the live progress view (progress.py) and resume (restore.py)."""
