"""The Kubernetes API server stand-in (kubeapi.py) on 127.0.0.1 for tests on this machine, with the
certificates and admin kubeconfig `k3s server` makes (core.make_ca, core.sign, core.KUBECONFIG).

Not used by `k3s server` itself: it lives here, not in kubeapi.py, because kubeapi.py stays free of
core.py (core.py imports kubeapi.py and embeds it; kubeapi.py runs alone too).
"""

import base64
import os
from typing import NamedTuple, Optional

from . import core, kubeapi


class LocalAPI(NamedTuple):
    server: kubeapi.KubeAPI
    port: int
    kubeconfig: str  # the admin kubeconfig's text (client-admin, system:masters)


def admin_kubeconfig(tls: str, port: int) -> str:
    """The admin kubeconfig for https://127.0.0.1:<port>, its CA and client certificate embedded
    from server-ca.crt, client-admin.crt and client-admin.key in `tls`."""
    def b64(name: str) -> str:
        with open(os.path.join(str(tls), name), "rb") as handle:
            return base64.b64encode(handle.read()).decode()
    return core.KUBECONFIG % {"ca": b64("server-ca.crt"), "port": port,
                              "crt": b64("client-admin.crt"), "key": b64("client-admin.key")}


def serve(tls: str, audit_path: Optional[str] = None) -> LocalAPI:
    """Make the directory `tls` (it must not exist yet) with a CA, a serving certificate for
    localhost and 127.0.0.1 and a client-admin certificate, then serve a new kubeapi.KubeAPI
    (audit log at `audit_path` when given) on 127.0.0.1, a free port. The caller shuts it down."""
    tls = str(tls)
    os.mkdir(tls)
    core.make_ca(tls)
    core.sign(tls, "serving-kube-apiserver", "/CN=kube-apiserver",
              "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth")
    core.sign(tls, "client-admin", "/O=system:masters/CN=system:admin", "extendedKeyUsage=clientAuth")
    server = kubeapi.KubeAPI(audit_path=audit_path)
    port = server.serve("127.0.0.1", 0, os.path.join(tls, "serving-kube-apiserver.crt"),
                        os.path.join(tls, "serving-kube-apiserver.key"), os.path.join(tls, "server-ca.crt"))
    return LocalAPI(server, port, admin_kubeconfig(tls, port))
