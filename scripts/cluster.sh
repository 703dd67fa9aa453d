#!/usr/bin/env bash
# kind quickstart for the kfp-mlops pipelines on Kubeflow Pipelines.
#
#   scripts/cluster.sh [--dry-run] cluster            kind + pinned KFP + our images and manifests; UI on :8080
#   scripts/cluster.sh [--dry-run] images [--push]    build (and push) the step images and the MLflow image
#   scripts/cluster.sh [--dry-run] ui                 port-forward the KFP UI and API to localhost:$UI_PORT
#   scripts/cluster.sh [--dry-run] db-secrets         PostgreSQL's Secrets with generated passwords (kept if present)
#   scripts/cluster.sh [--dry-run] submit ARGS...     python -m pipelines submit ARGS --host http://localhost:$UI_PORT
#   scripts/cluster.sh [--dry-run] schedule ARGS...   python -m pipelines schedule ARGS --host http://localhost:$UI_PORT
#   scripts/cluster.sh [--dry-run] down               delete the kind cluster
#
# --dry-run prints every command instead of running it (no tool needs to be installed).
# Settings (environment): CLUSTER_NAME (kfp-mlops), PIPELINE_VERSION (the pinned KFP
# release), UI_PORT (8080), PYTHON (.venv/bin/python, else python3).
set -euo pipefail

# Kubeflow Pipelines standalone release, pinned: the backend must understand the
# platform spec that kfp / kfp-kubernetes 2.17.3 compile (e.g. optional Secrets).
readonly KFP_RELEASE="2.17.3"
PIPELINE_VERSION="${PIPELINE_VERSION:-$KFP_RELEASE}"
CLUSTER_NAME="${CLUSTER_NAME:-kfp-mlops}"
UI_PORT="${UI_PORT:-8080}"
KFP_NAMESPACE="kubeflow"
SERVICES_NAMESPACE="kfp-mlops"
KFP_MANIFESTS="github.com/kubeflow/pipelines/manifests/kustomize"
OVERLAY="manifests/overlays/kind"

# Work from the repository root, wherever this is called from.
SELF="${BASH_SOURCE[0]}"
[[ "$SELF" == */* ]] || SELF="./$SELF"
SCRIPT_DIR="$(cd "${SELF%/*}" && pwd)"
SELF="$SCRIPT_DIR/${SELF##*/}"
cd "$SCRIPT_DIR/.."

if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

DRY_RUN=0

# The header comment above, without the leading "# " (bash only: works with no PATH).
usage() {
  local line n=0
  while IFS= read -r line; do
    n=$((n + 1))
    ((n >= 2)) || continue
    ((n <= 14)) || break
    line="${line#\#}"
    echo "${line# }"
  done <"$SELF"
}

die() {
  echo "cluster.sh: $*" >&2
  exit 1
}

# Run a command, or print it (shell-quoted, one line) with --dry-run.
run() {
  if ((DRY_RUN)); then
    local quoted
    printf -v quoted '%q ' "$@"
    echo "${quoted% }"
  else
    "$@"
  fi
}

# Fail early with one clear line when a tool is missing (a note only with --dry-run).
require() {
  local missing=()
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  ((${#missing[@]} == 0)) && return 0
  local message="missing required tools: ${missing[*]} (kind: https://kind.sigs.k8s.io, kubectl: https://kubernetes.io/docs/tasks/tools/, docker)"
  if ((DRY_RUN)); then
    echo "# note: $message" >&2
  else
    die "$message"
  fi
}

require_python() {
  if ! command -v "$PYTHON" >/dev/null 2>&1; then
    die "no Python at '$PYTHON': run 'make install' first, or set PYTHON"
  fi
}

# Every image the cluster needs: the step images of components/images.py (tag = package
# version) and the MLflow tracking server. One per line, sorted, no duplicates.
images() {
  require_python
  "$PYTHON" -c '
from components.catalog import IMAGES
from components.images import package_version, registry
names = set(IMAGES.values()) | {f"{registry()}/kfp-mlops-mlflow:{package_version()}"}
print("\n".join(sorted(names)))
'
}

mlflow_image() {
  local image
  while IFS= read -r image; do
    [[ "$image" == */kfp-mlops-mlflow:* ]] && echo "$image"
  done < <(images)
  return 0
}

cmd_images() {
  local push=0
  case "${1:-}" in
    "") ;;
    --push) push=1 ;;
    *) die "images takes only --push, got '$1'" ;;
  esac
  require docker
  require_python
  local mlflow
  mlflow="$(mlflow_image)"
  [[ -n "$mlflow" ]] || die "could not name the MLflow image"
  if ((push)); then
    run "$PYTHON" images/build.py --push
  else
    run "$PYTHON" images/build.py
  fi
  run docker build -f manifests/mlflow-server/Dockerfile -t "$mlflow" .
  if ((push)); then
    run docker push "$mlflow"
  fi
}

cmd_cluster() {
  require kind kubectl docker
  local image_list=()
  mapfile -t image_list < <(images)
  ((${#image_list[@]} > 0)) || die "no images listed by components/images.py"

  if ((!DRY_RUN)); then
    local image
    for image in "${image_list[@]}"; do
      docker image inspect "$image" >/dev/null 2>&1 ||
        die "image $image is not built: run 'scripts/cluster.sh images' (or 'make images') first"
    done
  fi

  if ((!DRY_RUN)) && kind get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
    echo "kind cluster $CLUSTER_NAME exists: reusing it"
  else
    run kind create cluster --name "$CLUSTER_NAME"
  fi

  # Kubeflow Pipelines standalone, at the pinned release.
  run kubectl apply -k "$KFP_MANIFESTS/cluster-scoped-resources?ref=$PIPELINE_VERSION"
  run kubectl wait --for condition=established --timeout=120s crd/applications.app.k8s.io
  run kubectl apply -k "$KFP_MANIFESTS/env/platform-agnostic?ref=$PIPELINE_VERSION"
  run kubectl -n "$KFP_NAMESPACE" wait --for=condition=Available --timeout=1200s deployment --all

  local image
  for image in "${image_list[@]}"; do
    run kind load docker-image "$image" --name "$CLUSTER_NAME"
  done

  # Our side: PostgreSQL and the MLflow server (their passwords first), runner service
  # account, settings, stores PVC, sample data.
  run kubectl apply -f manifests/base/namespace.yaml
  cmd_db_secrets
  run kubectl apply -k "$OVERLAY"
  run kubectl -n "$SERVICES_NAMESPACE" rollout status statefulset/postgres --timeout=600s
  run kubectl -n "$SERVICES_NAMESPACE" rollout status deployment/mlflow --timeout=600s
  run kubectl -n "$KFP_NAMESPACE" wait --for=condition=complete --timeout=600s job/kfp-mlops-seed-sample

  cmd_ui
}

# The passwords of the in-cluster PostgreSQL (manifests/secrets/postgres), generated once:
# Secret postgres-credentials beside the server, and the optuna role's password again as
# PGPASSWORD for the steps (optuna-storage-credentials, runs namespace). An existing
# postgres-credentials is kept: the database volume holds roles with those passwords. The
# values go through files only readable by this user, never through a command line.
cmd_db_secrets() {
  require kubectl
  if ((!DRY_RUN)) && kubectl -n "$SERVICES_NAMESPACE" get secret postgres-credentials >/dev/null 2>&1; then
    echo "Secret $SERVICES_NAMESPACE/postgres-credentials exists: keeping its passwords" >&2
    return 0
  fi
  local dir=generated-passwords # what --dry-run prints
  local key
  if ((!DRY_RUN)); then
    require_python
    dir="$(umask 077 && mktemp -d)"
    for key in POSTGRES_PASSWORD MLFLOW_DB_PASSWORD OPTUNA_DB_PASSWORD; do
      (umask 077 && "$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(24), end="")' >"$dir/$key")
    done
  fi
  run kubectl -n "$SERVICES_NAMESPACE" create secret generic postgres-credentials \
    "--from-file=POSTGRES_PASSWORD=$dir/POSTGRES_PASSWORD" \
    "--from-file=MLFLOW_DB_PASSWORD=$dir/MLFLOW_DB_PASSWORD" \
    "--from-file=OPTUNA_DB_PASSWORD=$dir/OPTUNA_DB_PASSWORD"
  run kubectl -n "$KFP_NAMESPACE" delete secret optuna-storage-credentials --ignore-not-found
  run kubectl -n "$KFP_NAMESPACE" create secret generic optuna-storage-credentials \
    "--from-file=PGPASSWORD=$dir/OPTUNA_DB_PASSWORD"
  if ((!DRY_RUN)); then
    rm -rf "$dir"
  fi
}

cmd_ui() {
  require kubectl
  echo "KFP UI and API at http://localhost:$UI_PORT (Ctrl-C stops the port-forward)" >&2
  run kubectl -n "$KFP_NAMESPACE" port-forward svc/ml-pipeline-ui "$UI_PORT:80"
}

cmd_pipelines() {
  local command="$1"
  shift
  require_python
  run "$PYTHON" -m pipelines "$command" "$@" --host "http://localhost:$UI_PORT"
}

cmd_down() {
  require kind
  run kind delete cluster --name "$CLUSTER_NAME"
}

main() {
  while (($# > 0)); do
    case "$1" in
      --dry-run) DRY_RUN=1 ;;
      -h | --help)
        usage
        return 0
        ;;
      -*) die "unknown option $1 (see --help)" ;;
      *) break ;;
    esac
    shift
  done
  (($# > 0)) || {
    usage >&2
    return 2
  }
  local command="$1"
  shift
  case "$command" in
    cluster) cmd_cluster ;;
    images) cmd_images "$@" ;;
    ui) cmd_ui ;;
    db-secrets) cmd_db_secrets ;;
    submit | schedule) cmd_pipelines "$command" "$@" ;;
    down) cmd_down ;;
    *) die "unknown command '$command' (cluster, images, ui, db-secrets, submit, schedule, down)" ;;
  esac
}

main "$@"
