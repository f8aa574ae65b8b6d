#!/usr/bin/env bash
# The head of a gan-search cluster: Ray's head (dashboard on loopback) and the MLflow
# tracking server on loopback (the one writer is the search driver on this node; people
# reach the UI through `ray attach CLUSTER.yaml -p 5000`). From both cluster files.
#
#   bash ~/gan-search/cluster/start-head.sh [extra ray start arguments]
set -euo pipefail
. "$HOME/.gan-search/env"
runs="$HOME/gan_search_runs"
# a previous MLflow server of this node (ray up run again): stopped by its process id
if [ -f "$runs/mlflow-server.pid" ]; then
    kill "$(cat "$runs/mlflow-server.pid")" 2> /dev/null || true
    rm -f "$runs/mlflow-server.pid"
fi
ray stop  # this user's Ray on this node: give gan-search a user of its own on shared servers
ulimit -n 65536 2> /dev/null || true
ray start --head --port=6379 --object-manager-port=8076 --dashboard-host=127.0.0.1 \
    --autoscaling-config="$HOME/ray_bootstrap_config.yaml" --disable-usage-stats "$@"
setsid nohup mlflow server --host 127.0.0.1 --port 5000 \
    --backend-store-uri "sqlite:///$runs/mlflow.db" \
    --artifacts-destination "$GAN_SEARCH_MLFLOW_ARTIFACTS" \
    > "$runs/mlflow-server.log" 2>&1 < /dev/null &
echo $! > "$runs/mlflow-server.pid"
# ready before `ray up` returns: a search started right after must find it
for _ in $(seq 120); do
    if python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:5000/health', timeout=2)" \
            2> /dev/null; then
        break
    fi
    if ! kill -0 "$(cat "$runs/mlflow-server.pid")" 2> /dev/null; then
        tail -20 "$runs/mlflow-server.log"; echo "the MLflow server did not start" >&2; exit 1
    fi
    sleep 1
done
echo "gan-search head: Ray on port 6379, MLflow on 127.0.0.1:5000 (pid $(cat "$runs/mlflow-server.pid"))"
