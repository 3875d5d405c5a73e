#!/usr/bin/env bash
# `make lab` / `make lab-down`: the collection on local VMs (1 server + 2 agents).
#   lab.sh up      image (cached) -> boot VMs -> inventories/lab/hosts.yml -> site.yml -> where things are
#   lab.sh down    stop the VMs, remove overlays and the generated hosts file
#   lab.sh status  VMs and where the kubeconfig / Argo CD are
# Env: LAB_MIRROR=1 also serves $LAB_MIRROR_ROOT (default ~/.cache/dictamesh-vmlab/mirror) to the
# VMs as vmlab_mirror_url; LAB_STANDIN=1 (a try-out, not K3S) fills that mirror with the K3S test
# stand-in and runs playbooks/k3s_cluster.yml only; LAB_PLAYBOOK picks the playbook (default
# site.yml); LAB_KEEP=1 keeps the VMs when the playbook fails (default: removed); LAB_SERVERS /
# LAB_AGENTS change the shape; ANSIBLE_ARGS are passed to ansible-playbook. Before any VM boots,
# `vmlab.py lab-check` checks that the VMs will find K3S (LAB_SKIP_CHECK=1 skips it).
# VMLAB_* variables: see docs/lab.md.
set -euo pipefail
cd "$(dirname "$0")/../.."

PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
VMLAB=(env "$PY" tests/vmlab/vmlab.py)
PLAYBOOK=.venv/bin/ansible-playbook
[ -x "$PLAYBOOK" ] || PLAYBOOK=ansible-playbook
export ANSIBLE_CONFIG="${ANSIBLE_CONFIG:-$PWD/ansible.cfg}"

cleanup_on_failure() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    if [ "${LAB_KEEP:-0}" = "1" ]; then
      echo "lab: failed (rc=$rc); VMs kept (LAB_KEEP=1). Remove them with: make lab-down" >&2
      "${VMLAB[@]}" lab-info >&2 || true
    else
      echo "lab: failed (rc=$rc); removing the VMs (set LAB_KEEP=1 to keep them)" >&2
      "${VMLAB[@]}" lab-down || true
    fi
  fi
  exit "$rc"
}

case "${1:-up}" in
  up)
    start=$(date +%s)
    if [ "${LAB_STANDIN:-0}" = "1" ]; then
      export LAB_MIRROR=1
      playbook=${LAB_PLAYBOOK:-playbooks/k3s_cluster.yml}
    else
      playbook=${LAB_PLAYBOOK:-site.yml}
    fi
    # Nothing is booted or removed yet: a refusal here leaves a running lab alone.
    "${VMLAB[@]}" lab-check
    trap cleanup_on_failure EXIT
    trap 'exit 130' INT TERM
    "${VMLAB[@]}" lab --servers "${LAB_SERVERS:-1}" --agents "${LAB_AGENTS:-2}"
    echo "lab: ansible-playbook $playbook -i inventories/lab"
    # shellcheck disable=SC2086
    "$PLAYBOOK" "$playbook" -i inventories/lab ${ANSIBLE_ARGS:-}
    echo "lab: done in $(( $(date +%s) - start )) s. Remove the VMs with: make lab-down"
    "${VMLAB[@]}" lab-info
    ;;
  down)
    "${VMLAB[@]}" lab-down
    ;;
  status)
    "${VMLAB[@]}" lab-info
    ;;
  *)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
