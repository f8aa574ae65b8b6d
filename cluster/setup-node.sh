#!/usr/bin/env bash
# Every node of a gan-search cluster, from cluster.yaml (AWS) and cluster-onprem.yaml alike:
# install the project (synced to ~/gan-search) with its pinned dependencies, and write
# ~/.gan-search/env, which every later command on the node sources.
#
#   bash ~/gan-search/cluster/setup-node.sh STORAGE
#
# STORAGE: Tune's shared storage for the whole cluster (s3://bucket/path, or a folder that
# every node mounts at the same path, e.g. NFS): the one place a cluster file names it.
# GAN_SEARCH_VENV (optional): install into this virtual environment (made with python3 if
# missing) instead of the node's own Python (the AWS image's container).
set -euo pipefail
storage=${1:?usage: setup-node.sh STORAGE (s3://bucket/path or a shared folder)}
project=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=python3
if [ -n "${GAN_SEARCH_VENV:-}" ]; then
    [ -x "$GAN_SEARCH_VENV/bin/python" ] || python3 -m venv "$GAN_SEARCH_VENV"
    python="$GAN_SEARCH_VENV/bin/python"
fi
"$python" -m pip install -q -e "$project"
case "$storage" in
    s3://*) "$python" -m pip install -q "boto3>=1.34"  # S3 for Tune and MLflow's artifacts
            artifacts="$storage/mlflow" ;;
    *)      mkdir -p "$storage"
            artifacts="$HOME/gan_search_runs/mlartifacts" ;;
esac
mkdir -p "$HOME/.gan-search" "$HOME/gan_search_runs"
cat > "$HOME/.gan-search/env" <<ENV
export PATH="$(dirname "$python"):\$PATH"
export GAN_SEARCH_STORAGE="$storage"
export GAN_SEARCH_MLFLOW_ARTIFACTS="$artifacts"
export MLFLOW_TRACKING_URI="http://127.0.0.1:5000"
# the cluster's Ray uses token authentication; the token is synced to ~/.ray/auth_token
export RAY_AUTH_MODE=token
ENV
grep -qs "gan-search/env" "$HOME/.bashrc" || \
    printf '%s\n' '[ -f ~/.gan-search/env ] && . ~/.gan-search/env' >> "$HOME/.bashrc"
echo "gan-search set up with $("$python" -c 'import sys; print(sys.executable)'); storage $storage"
