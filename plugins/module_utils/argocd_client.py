# -*- coding: utf-8 -*-
# Copyright (c) dictamesh.k3s_gitops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private Argo CD REST client for the dictamesh.k3s_gitops modules.

Only ``ansible.module_utils.urls.open_url`` is used (no third-party client).
Facts this client respects (Argo CD 3.x; docs/architecture.md "Argo CD REST facts" says where
each was read):

* every non-GET request (DELETE too) carries ``Content-Type: application/json``
  with no parameter, otherwise the server answers 415;
* repository URLs in a path are fully percent-encoded, slashes included;
* errors are ``{error, code, message}`` with a gRPC code;
* empty lists come back as ``"items": null``;
* a wrong password is never retried (the server locks the user after 5
  failures in 300 s); only idempotent requests are retried, and only on
  502/503/504, connection errors and timeouts.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import socket
import time

from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.six.moves.urllib.parse import quote, urlencode
from ansible.module_utils.urls import ConnectionError as UrlsConnectionError
from ansible.module_utils.urls import SSLValidationError, open_url

try:
    from email.utils import parsedate_to_datetime
except ImportError:  # pragma: no cover
    parsedate_to_datetime = None

JSON_CONTENT_TYPE = "application/json"
RETRY_STATUSES = frozenset((502, 503, 504))
IDEMPOTENT_METHODS = frozenset(("GET", "HEAD", "PUT", "DELETE"))
SECRET_REPO_FIELDS = (
    "password",
    "sshPrivateKey",
    "tlsClientCertKey",
    "githubAppPrivateKey",
    "bearerToken",
    "gcpServiceAccountKey",
    "azureServicePrincipalClientSecret",
)


class ArgoCDError(Exception):
    """An error answered by the Argo CD API (or no answer at all).

    ``status`` is the HTTP status (None when no HTTP answer arrived),
    ``code`` the gRPC code from the error body (None when absent) and
    ``message`` the server's message.
    """

    def __init__(self, message, status=None, code=None, method=None, url=None, body=None):
        super(ArgoCDError, self).__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.method = method
        self.url = url
        self.body = body

    def __str__(self):
        where = "%s %s: " % (self.method, self.url) if self.method else ""
        status = "HTTP %s" % self.status if self.status is not None else "no HTTP answer"
        code = ", gRPC code %s" % self.code if self.code is not None else ""
        return "%s%s (%s%s)" % (where, self.message, status, code)

    def to_dict(self):
        return {"status": self.status, "code": self.code, "message": self.message, "url": self.url}


class ArgoCDConnectionError(ArgoCDError):
    """No HTTP answer: refused connection, DNS, timeout."""


class ArgoCDTLSError(ArgoCDConnectionError):
    """TLS handshake or certificate validation failed."""


def encode_path_segment(value):
    """Percent-encode one path segment completely (``/`` and ``:`` too)."""
    return quote(str(value), safe="")


def normalize_base_path(base_path):
    """``argocd/`` -> ``/argocd``; empty or ``/`` -> ``''``."""
    if not base_path:
        return ""
    stripped = base_path.strip("/")
    return "/" + stripped if stripped else ""


def parse_error_body(raw):
    """Return ``(message, code)`` from an error body (JSON or plain text)."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else (raw or "")
    try:
        data = json.loads(text) if text else None
    except ValueError:
        data = None
    if isinstance(data, dict):
        message = data.get("message") or data.get("error") or text
        code = data.get("code")
        return message, code if isinstance(code, int) else None
    return text.strip() or "empty error body", None


def items_of(data):
    """Return the ``items`` list of a list answer, ``[]`` for ``items: null``."""
    if not isinstance(data, dict):
        return []
    return data.get("items") or []


def sanitize_repository(repo):
    """Drop every credential field from a repository object."""
    if not isinstance(repo, dict):
        return repo
    return dict((k, v) for k, v in repo.items() if k not in SECRET_REPO_FIELDS)


def http_date(headers):
    """Parse the ``Date`` header of a response into an aware datetime, or None."""
    if headers is None or parsedate_to_datetime is None:
        return None
    value = headers.get("Date")
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None


class ArgoCDClient:
    """Thin JSON client over ``open_url``."""

    def __init__(
        self,
        server_url,
        auth_token=None,
        base_path="",
        validate_certs=True,
        ca_path=None,
        timeout=30,
        retries=3,
        backoff=0.5,
        opener=None,
        sleep=None,
    ):
        if not server_url:
            raise ValueError("server_url is required")
        if "://" not in server_url:
            server_url = "https://" + server_url
        self.server_url = server_url.rstrip("/")
        self.base_path = normalize_base_path(base_path)
        self.auth_token = auth_token
        self.validate_certs = validate_certs
        self.ca_path = ca_path
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._open = opener or open_url
        self._sleep = sleep or time.sleep
        self.last_response_date = None

    # ------------------------------------------------------------------ core
    def url(self, path, query=None):
        url = self.server_url + self.base_path + path
        if query:
            pairs = []
            for key, value in query.items():
                if value is None:
                    continue
                if isinstance(value, bool):
                    value = "true" if value else "false"
                if isinstance(value, (list, tuple)):
                    pairs.extend((key, v) for v in value)
                else:
                    pairs.append((key, value))
            if pairs:
                url += "?" + urlencode(pairs)
        return url

    def headers(self, method, accept=JSON_CONTENT_TYPE):
        headers = {"Accept": accept}
        if method != "GET":
            headers["Content-Type"] = JSON_CONTENT_TYPE
        if self.auth_token:
            headers["Authorization"] = "Bearer %s" % self.auth_token
        return headers

    def open(self, method, path, query=None, body=None, timeout=None, accept=JSON_CONTENT_TYPE):
        """Send one request; return the open response or raise ArgoCDError."""
        url = self.url(path, query)
        data = json.dumps(body) if body is not None else None
        try:
            return self._open(
                url,
                data=data,
                headers=self.headers(method, accept),
                method=method,
                timeout=timeout or self.timeout,
                validate_certs=self.validate_certs,
                ca_path=self.ca_path,
                follow_redirects="none",
                use_proxy=True,
            )
        except HTTPError as exc:
            raw = exc.read() if hasattr(exc, "read") else b""
            message, code = parse_error_body(raw)
            raise ArgoCDError(message, status=exc.code, code=code, method=method, url=url, body=raw)
        except SSLValidationError as exc:
            raise ArgoCDTLSError("TLS validation failed: %s" % exc, method=method, url=url)
        except URLError as exc:
            reason = getattr(exc, "reason", exc)
            if "CERTIFICATE" in str(reason).upper() or "SSL" in str(reason).upper():
                raise ArgoCDTLSError("TLS error: %s" % reason, method=method, url=url)
            raise ArgoCDConnectionError("cannot connect: %s" % reason, method=method, url=url)
        except (socket.timeout, UrlsConnectionError, OSError) as exc:
            raise ArgoCDConnectionError("connection failed: %s" % exc, method=method, url=url)

    def request(self, method, path, query=None, body=None, idempotent=None, timeout=None):
        """Send a request and decode its JSON answer (None for an empty body)."""
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        attempts = 1 + (self.retries if idempotent else 0)
        for attempt in range(attempts):
            try:
                response = self.open(method, path, query=query, body=body, timeout=timeout)
                raw = response.read()
                self.last_response_date = http_date(getattr(response, "headers", None))
                break
            except ArgoCDError as exc:
                retriable = isinstance(exc, ArgoCDConnectionError) and not isinstance(exc, ArgoCDTLSError)
                retriable = retriable or exc.status in RETRY_STATUSES
                if not retriable or attempt == attempts - 1:
                    raise
                self._sleep(self.backoff * (2 ** attempt))
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            snippet = raw[:120].decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)[:120]
            raise ArgoCDError(
                "answer is not JSON (wrong server_url or base_path?): %r" % snippet,
                status=200, method=method, url=self.url(path, query),
            )

    # --------------------------------------------------------------- session
    def version(self):
        return self.request("GET", "/api/version")

    def login(self, username, password):
        """POST /api/v1/session; never retried (a wrong password counts as a failure)."""
        data = self.request(
            "POST", "/api/v1/session", body={"username": username, "password": password}, idempotent=False
        )
        return (data or {}).get("token")

    def userinfo(self):
        return self.request("GET", "/api/v1/session/userinfo")

    # ----------------------------------------------------------- application
    def get_application(self, name, project=None, app_namespace=None, refresh=None):
        """Return the application, or None when it is missing.

        Without ``project`` a missing application answers 403 (CVE-2022-41354):
        None is returned for it too. With ``project`` a 403 is a real denial
        (or the application belongs to another project) and is raised.
        """
        query = {"appNamespace": app_namespace, "refresh": refresh, "project": project}
        try:
            return self.request("GET", "/api/v1/applications/%s" % encode_path_segment(name), query=query)
        except ArgoCDError as exc:
            if exc.status == 404 or (exc.status == 403 and not project):
                return None
            raise

    def list_applications(self, projects=None, selector=None, repo=None, app_namespace=None, name=None):
        query = {"projects": projects, "selector": selector, "repo": repo, "appNamespace": app_namespace, "name": name}
        return items_of(self.request("GET", "/api/v1/applications", query=query))

    def create_application(self, application, upsert=False, validate=True):
        return self.request(
            "POST", "/api/v1/applications", query={"upsert": upsert, "validate": validate},
            body=application, idempotent=False,
        )

    def update_application(self, application, validate=True, project=None):
        name = application["metadata"]["name"]
        return self.request(
            "PUT", "/api/v1/applications/%s" % encode_path_segment(name),
            query={"validate": validate, "project": project}, body=application,
        )

    def delete_application(self, name, cascade=True, propagation_policy=None, app_namespace=None, project=None):
        query = {"cascade": cascade, "propagationPolicy": propagation_policy, "appNamespace": app_namespace, "project": project}
        return self.request("DELETE", "/api/v1/applications/%s" % encode_path_segment(name), query=query)

    def sync_application(self, name, sync_request):
        """POST .../sync (records the operation; the controller runs it). Not retried."""
        return self.request(
            "POST", "/api/v1/applications/%s/sync" % encode_path_segment(name), body=sync_request, idempotent=False
        )

    def rollback_application(self, name, rollback_request):
        """POST .../rollback: Argo CD records a sync to the history entry's revision. Not retried."""
        return self.request(
            "POST", "/api/v1/applications/%s/rollback" % encode_path_segment(name), body=rollback_request,
            idempotent=False,
        )

    def terminate_operation(self, name, app_namespace=None, project=None):
        return self.request(
            "DELETE", "/api/v1/applications/%s/operation" % encode_path_segment(name),
            query={"appNamespace": app_namespace, "project": project},
        )

    def watch_application(self, name, timeout, app_namespace=None, projects=None):
        """Yield each application from the stream endpoint (NDJSON events).

        Raises ArgoCDError when the stream cannot be opened or carries an
        error; returns when the server closes the stream. A read timeout
        raises ArgoCDConnectionError.
        """
        query = {"name": name, "appNamespace": app_namespace, "projects": projects}
        response = self.open("GET", "/api/v1/stream/applications", query=query, timeout=timeout)
        try:
            while True:
                try:
                    line = response.readline()
                except (socket.timeout, OSError) as exc:
                    raise ArgoCDConnectionError("stream read: %s" % exc, method="GET", url="stream")
                if not line:
                    return
                line = line.strip()
                if not line:
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    raise ArgoCDError("stream event is not JSON: %r" % line[:120], status=200, method="GET", url="stream")
                if event.get("error"):
                    err = event["error"]
                    raise ArgoCDError(err.get("message", "stream error"), status=err.get("http_code"),
                                      code=err.get("grpc_code"), method="GET", url="stream")
                application = (event.get("result") or {}).get("application")
                if application is not None:
                    yield application
        finally:
            close = getattr(response, "close", None)
            if close:
                close()

    # ------------------------------------------------------------ repository
    def get_repository(self, repo_url, app_project=None):
        """Return the repository (without credentials) or None (missing answers 403)."""
        try:
            return self.request(
                "GET", "/api/v1/repositories/%s" % encode_path_segment(repo_url), query={"appProject": app_project}
            )
        except ArgoCDError as exc:
            if exc.status in (403, 404):
                return None
            raise

    def create_repository(self, repository, upsert=False):
        return self.request(
            "POST", "/api/v1/repositories", query={"upsert": upsert}, body=repository, idempotent=False
        )

    def delete_repository(self, repo_url, app_project=None):
        return self.request(
            "DELETE", "/api/v1/repositories/%s" % encode_path_segment(repo_url), query={"appProject": app_project}
        )

    # --------------------------------------------------------------- project
    def get_project(self, name):
        try:
            return self.request("GET", "/api/v1/projects/%s" % encode_path_segment(name))
        except ArgoCDError as exc:
            if exc.status == 404:
                return None
            raise

    def create_project(self, project, upsert=False):
        return self.request(
            "POST", "/api/v1/projects", body={"project": project, "upsert": upsert}, idempotent=False
        )

    def update_project(self, project):
        """PUT with the project's current ``metadata.resourceVersion`` (stale -> 409)."""
        name = project["metadata"]["name"]
        return self.request("PUT", "/api/v1/projects/%s" % encode_path_segment(name), body={"project": project})

    def delete_project(self, name):
        return self.request("DELETE", "/api/v1/projects/%s" % encode_path_segment(name))
