# -*- coding: utf-8 -*-
# Copyright: DictaMesh maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Is the Node of a server that is about to join with an empty data dir an old etcd member?

K3S (k3s-io/k3s v1.34, pkg/etcd/etcd.go, join) refuses a joining server when the cluster has a
member of the same node name under another member name ("duplicate node name found, please use
a unique name for this node"); a server with an empty data dir always gets a new member name
(<node name>-<8 hex>). Its old member goes when its Node is deleted: the member controller
(pkg/etcd/member_controller.go, onRemove) removes the member named by the Node's annotations
etcd.k3s.cattle.io/node-name and node-address (RemovePeer) before a wrangler finalizer lets the
Node go, so `kubectl delete node` returns after the member is gone.

k3s_stale_member reads `kubectl get nodes -o json` (or `get node <name> --ignore-not-found -o json`),
run on a live server, and says what the role must do before this server starts K3S. Absence is
decided from that data, never from kubectl's error text:
  none    no Node of that name: nothing to remove (a new server);
  wait    the Node is still Ready: the old server stopped less than the node monitor grace period
          ago, or another machine runs with this name; look again later;
  remove  an etcd member's Node that is not Ready: delete it (this removes the member);
  refuse  anything else (an agent of that name, a Node without the member annotations, kubectl
          failing): reason says why; nothing may be deleted.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from ansible.errors import AnsibleFilterError
from ansible_collections.dictamesh.k3s_gitops.plugins.plugin_utils.kubectl_json import kubectl_items, load_kubectl_json

ETCD_ROLE = "node-role.kubernetes.io/etcd"
MEMBER_NAME = "etcd.k3s.cattle.io/node-name"
MEMBER_ADDRESS = "etcd.k3s.cattle.io/node-address"


def _answer(action, reason, member="", address=""):
    return {"action": action, "reason": reason, "member": member, "address": address}


def _find(stdout, name):
    """The Node `name` in kubectl's -o json answer (a List, one Node, or '' for nothing), or None."""
    items = kubectl_items(load_kubectl_json(stdout, "k3s_stale_member"))
    return next((i for i in items if (i.get("metadata") or {}).get("name") == name), None)


def k3s_stale_member(result, node_name, node_ip=""):
    """Decide from the registered result of `k3s kubectl get nodes -o json`."""
    if not isinstance(result, dict):
        raise AnsibleFilterError("k3s_stale_member: expected the registered result of kubectl, got %s"
                                 % type(result).__name__)
    name = str(node_name)
    stderr = str(result.get("stderr") or "")
    if result.get("rc", 1) != 0:
        last = stderr.strip().splitlines()[-1] if stderr.strip() else str(result.get("msg") or "no output")
        return _answer("refuse", "could not read the Nodes on the running server: %s" % last)
    node = _find(str(result.get("stdout") or ""), name)
    if node is None:
        return _answer("none", "no Node named %s: no old etcd member to remove" % name)
    metadata = node.get("metadata") or {}
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    if labels.get(ETCD_ROLE) != "true":
        return _answer("refuse", "a Node named %s exists and is not an etcd server (an agent, or another machine "
                                 "with this name): remove it first (playbooks/remove_node.yml) or give this "
                                 "server another node_name" % name)
    member, address = annotations.get(MEMBER_NAME, ""), annotations.get(MEMBER_ADDRESS, "")
    if not member or not address:
        return _answer("refuse", "the Node %s has no %s / %s annotations, so deleting it would not remove its "
                                 "etcd member: remove the member with etcdctl (member remove) first"
                       % (name, MEMBER_NAME, MEMBER_ADDRESS))
    ready = [c for c in (node.get("status") or {}).get("conditions") or []
             if isinstance(c, dict) and c.get("type") == "Ready"]
    moved = "" if not node_ip or address == str(node_ip) else " (it had address %s, this host uses %s)" % (
        address, node_ip)
    if ready and ready[0].get("status") == "True":
        return _answer("wait", "the Node %s (etcd member %s%s) is still Ready: a running server has this name, "
                               "or it stopped moments ago; a healthy member is never removed"
                       % (name, member, moved), member, address)
    return _answer("remove", "the Node %s is the old etcd member %s%s of this server, which lost its data: "
                             "deleting the Node removes the member so that the server can join again"
                   % (name, member, moved), member, address)


class FilterModule:
    """K3S etcd member filters."""

    def filters(self):
        return {"k3s_stale_member": k3s_stale_member}
