#!/usr/bin/env bash
# A worker of a gan-search cluster joins the head (from both cluster files).
#
#   bash ~/gan-search/cluster/start-worker.sh HEAD_IP
set -euo pipefail
head=${1:?usage: start-worker.sh HEAD_IP}
. "$HOME/.gan-search/env"
ray stop  # this user's Ray on this node
ulimit -n 65536 2> /dev/null || true
ray start --address="$head:6379" --object-manager-port=8076 --disable-usage-stats
