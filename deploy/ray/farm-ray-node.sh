#!/usr/bin/env bash
# Starts this lab host's Ray node the way Farm places device actors (farm/placement.py): the node carries the
# label farm-node=<FARM_NODE> and a custom resource named <FARM_NODE>, so an inventory entry `node: <FARM_NODE>`
# lands on this machine whatever its IP or hostname. Run by systemd (farm-ray.service) with /etc/farm/ray.env.
#
# Environment (see ray.env.example):
#   FARM_RAY_ROLE      head | worker
#   FARM_NODE          this host's name in the inventory (`node:` of the devices plugged into it)
#   RAY_HEAD_ADDRESS   head's host:port (workers only), e.g. 10.0.0.10:6379
#   FARM_RAY_NUM_CPUS  CPUs Ray may schedule tasks on (default: Ray's count); device actors take none
#   FARM_RAY_METRICS_PORT  the node's Prometheus metrics port (default 8080)
#   FARM_RAY_ARGS      extra `ray start` arguments, e.g. --node-ip-address=10.0.0.21
#   RAY_AUTH_MODE, RAY_AUTH_TOKEN_PATH  token authentication, read by ray itself (deploy/README.md)
#   FARM_RAY_DRY_RUN=1 print the command instead of running it
set -euo pipefail

: "${FARM_RAY_ROLE:?set FARM_RAY_ROLE=head or worker}"
: "${FARM_NODE:?set FARM_NODE to the inventory node name of this host}"
if [[ ! "$FARM_NODE" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]]; then
  echo "FARM_NODE must be letters, digits, '.', '_' or '-' (it becomes a Ray label and resource): $FARM_NODE" >&2
  exit 2
fi
RAY="${FARM_RAY_BIN:-ray}"

args=(start --block --disable-usage-stats
  --labels "farm-node=${FARM_NODE}"
  --resources "{\"${FARM_NODE}\": 1}"
  --metrics-export-port "${FARM_RAY_METRICS_PORT:-8080}")
[[ -n "${FARM_RAY_NUM_CPUS:-}" ]] && args+=(--num-cpus "$FARM_RAY_NUM_CPUS")

case "$FARM_RAY_ROLE" in
  head)
    # The dashboard (and its Jobs API, which runs code for whoever reaches it) stays on loopback: submit jobs
    # from the head or through an SSH tunnel. Workers only need the GCS port (6379) and node ports.
    args+=(--head --port 6379 --dashboard-host 127.0.0.1)
    ;;
  worker)
    : "${RAY_HEAD_ADDRESS:?set RAY_HEAD_ADDRESS=head-host:6379 for a worker}"
    args+=(--address "$RAY_HEAD_ADDRESS")
    ;;
  *)
    echo "FARM_RAY_ROLE must be head or worker, not '$FARM_RAY_ROLE'" >&2
    exit 2
    ;;
esac

if [[ "${RAY_AUTH_MODE:-}" != "token" ]]; then
  echo "warning: RAY_AUTH_MODE is not 'token': anyone who reaches this cluster can run code on it" >&2
fi

# Ray runs its workers at nice 15 by default; benchmarks started by device actors would inherit it and lose the
# CPU to anything else on the host. Farm's device actors must run at normal priority (docs/running.md).
export RAY_worker_niceness="${RAY_worker_niceness:-0}"

# shellcheck disable=SC2206  # FARM_RAY_ARGS is a list of words on purpose
extra=(${FARM_RAY_ARGS:-})
if [[ "${FARM_RAY_DRY_RUN:-}" == "1" ]]; then
  printf '%q ' "$RAY" "${args[@]}" "${extra[@]}"
  echo
  exit 0
fi
exec "$RAY" "${args[@]}" "${extra[@]}"
