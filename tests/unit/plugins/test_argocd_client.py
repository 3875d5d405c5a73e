"""ArgoCDClient: exact requests, encoding, errors, retries (open_url patched)."""

from __future__ import annotations

import io
import json
import socket
from email.message import Message
from typing import Any, Dict, List
from urllib.error import HTTPError, URLError

import pytest

from ansible_collections.dictamesh.k3s_gitops.plugins.module_utils import argocd_client as ac


class FakeResponse(io.BytesIO):
    def __init__(self, body: Any, date: str = "Wed, 27 Nov 2024 10:00:00 GMT") -> None:
        super().__init__(json.dumps(body).encode() if not isinstance(body, bytes) else body)
        self.headers = {"Date": date}


def http_error(status: int, body: Any) -> HTTPError:
    raw = json.dumps(body).encode() if not isinstance(body, bytes) else body
    return HTTPError("http://x", status, "err", Message(), io.BytesIO(raw))


class Opener:
    """Records every call; answers from a queue (exceptions are raised)."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls: List[Dict[str, Any]] = []

    def __call__(self, url: str, **kwargs: Any) -> Any:
        self.calls.append(dict(url=url, **kwargs))
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


def client(opener: Opener, **kwargs: Any) -> ac.ArgoCDClient:
    sleeps: List[float] = []
    c = ac.ArgoCDClient("https://argocd.example.com", auth_token="tok", opener=opener, sleep=sleeps.append, **kwargs)
    c.sleeps = sleeps  # type: ignore[attr-defined]
    return c


def test_get_sends_no_content_type_and_bearer():
    opener = Opener(FakeResponse({"Version": "v3.6.0"}))
    assert client(opener).version() == {"Version": "v3.6.0"}
    call = opener.calls[0]
    assert call["url"] == "https://argocd.example.com/api/version"
    assert call["method"] == "GET" and call["data"] is None
    assert "Content-Type" not in call["headers"]
    assert call["headers"]["Authorization"] == "Bearer tok"


@pytest.mark.parametrize("method_call, http_method", [
    (lambda c: c.delete_application("a", cascade=False), "DELETE"),
    (lambda c: c.terminate_operation("a"), "DELETE"),
    (lambda c: c.create_project({"metadata": {"name": "p"}}), "POST"),
    (lambda c: c.update_project({"metadata": {"name": "p", "resourceVersion": "7"}}), "PUT"),
])
def test_every_non_get_has_exact_json_content_type(method_call, http_method):
    opener = Opener(FakeResponse({}))
    method_call(client(opener))
    assert opener.calls[0]["method"] == http_method
    assert opener.calls[0]["headers"]["Content-Type"] == "application/json"


def test_repository_url_is_fully_percent_encoded():
    opener = Opener(FakeResponse({"repo": "x"}))
    client(opener).get_repository("https://github.com/a/b.git")
    assert opener.calls[0]["url"] == "https://argocd.example.com/api/v1/repositories/https%3A%2F%2Fgithub.com%2Fa%2Fb.git"


def test_base_path_and_query_booleans():
    opener = Opener(FakeResponse({}))
    client(opener, base_path="argocd/").delete_application("app", cascade=False, propagation_policy="foreground")
    assert opener.calls[0]["url"] == ("https://argocd.example.com/argocd/api/v1/applications/app"
                                      "?cascade=false&propagationPolicy=foreground")


def test_project_create_puts_upsert_in_the_body():
    opener = Opener(FakeResponse({}))
    client(opener).create_project({"metadata": {"name": "p"}}, upsert=True)
    assert json.loads(opener.calls[0]["data"]) == {"project": {"metadata": {"name": "p"}}, "upsert": True}
    assert opener.calls[0]["url"].endswith("/api/v1/projects")


def test_application_create_puts_upsert_in_the_query():
    opener = Opener(FakeResponse({}))
    client(opener).create_application({"metadata": {"name": "a"}}, upsert=True)
    assert opener.calls[0]["url"].endswith("/api/v1/applications?upsert=true&validate=true")


def test_error_body_becomes_typed_exception():
    opener = Opener(http_error(400, {"error": "x", "code": 9, "message": "another operation is already in progress"}))
    with pytest.raises(ac.ArgoCDError) as info:
        client(opener).sync_application("a", {})
    assert (info.value.status, info.value.code) == (400, 9)
    assert info.value.message == "another operation is already in progress"


def test_plain_text_415_is_parsed():
    opener = Opener(http_error(415, b"Invalid content type"))
    with pytest.raises(ac.ArgoCDError) as info:
        client(opener).delete_project("p")
    assert info.value.status == 415 and info.value.code is None
    assert info.value.message == "Invalid content type"


def test_items_null_is_empty_list():
    opener = Opener(FakeResponse({"items": None, "metadata": {}}))
    assert client(opener).list_applications() == []


def test_get_retries_on_503_with_backoff_then_succeeds():
    opener = Opener(http_error(503, b"busy"), http_error(502, b"bad gw"), FakeResponse({"Version": "v"}))
    c = client(opener)
    assert c.version() == {"Version": "v"}
    assert len(opener.calls) == 3
    assert c.sleeps == [0.5, 1.0]


def test_get_retries_connection_errors_but_gives_up():
    opener = Opener(URLError("refused"), socket.timeout("t"), URLError("refused"), URLError("refused"))
    c = client(opener)
    with pytest.raises(ac.ArgoCDConnectionError):
        c.version()
    assert len(opener.calls) == 4


def test_login_is_never_retried():
    opener = Opener(http_error(401, {"error": "x", "code": 16, "message": "Invalid username or password"}))
    with pytest.raises(ac.ArgoCDError) as info:
        client(opener).login("admin", "wrong")
    assert info.value.status == 401 and len(opener.calls) == 1


def test_login_not_retried_on_503_either():
    opener = Opener(http_error(503, b"busy"))
    with pytest.raises(ac.ArgoCDError):
        client(opener).login("admin", "pw")
    assert len(opener.calls) == 1


def test_sync_post_not_retried_on_connection_error():
    opener = Opener(URLError("reset"))
    with pytest.raises(ac.ArgoCDConnectionError):
        client(opener).sync_application("a", {})
    assert len(opener.calls) == 1


def test_404_not_retried():
    opener = Opener(http_error(404, {"error": "nf", "code": 5, "message": "not found"}))
    assert client(opener).get_project("p") is None
    assert len(opener.calls) == 1


def test_tls_error_is_typed_and_not_retried():
    opener = Opener(URLError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"))
    with pytest.raises(ac.ArgoCDTLSError):
        client(opener).version()
    assert len(opener.calls) == 1


def test_missing_application_without_project_is_none_with_project_403_raises():
    denied = {"error": "permission denied", "code": 7, "message": "permission denied"}
    assert client(Opener(http_error(403, denied))).get_application("a") is None
    with pytest.raises(ac.ArgoCDError):
        client(Opener(http_error(403, denied))).get_application("a", project="p")
    opener = Opener(http_error(404, {"error": "nf", "code": 5, "message": "nf"}))
    assert client(opener).get_application("a", project="p") is None
    assert opener.calls[0]["url"].endswith("/api/v1/applications/a?project=p")


def test_non_json_answer_points_at_base_path():
    opener = Opener(FakeResponse(b"<html>argo ui</html>"))
    with pytest.raises(ac.ArgoCDError, match="base_path"):
        client(opener).version()


def test_date_header_is_kept():
    opener = Opener(FakeResponse({}, date="Wed, 27 Nov 2024 10:00:05 GMT"))
    c = client(opener)
    c.sync_application("a", {})
    assert c.last_response_date.isoformat() == "2024-11-27T10:00:05+00:00"


def test_stream_yields_applications_and_raises_stream_errors():
    lines = b"\n".join([
        json.dumps({"result": {"type": "ADDED", "application": {"metadata": {"name": "a"}}}}).encode(),
        b"",
        json.dumps({"error": {"grpc_code": 7, "http_code": 403, "message": "permission denied"}}).encode(),
    ]) + b"\n"
    opener = Opener(FakeResponse(lines))
    events = client(opener).watch_application("a", timeout=5)
    assert next(events) == {"metadata": {"name": "a"}}
    with pytest.raises(ac.ArgoCDError) as info:
        next(events)
    assert info.value.status == 403
    assert opener.calls[0]["url"].endswith("/api/v1/stream/applications?name=a")
    assert opener.calls[0]["timeout"] == 5


def test_sanitize_repository_drops_credentials():
    repo = {"repo": "r", "username": "u", "password": "p", "sshPrivateKey": "k", "tlsClientCertKey": "c"}
    assert ac.sanitize_repository(repo) == {"repo": "r", "username": "u"}


def test_rollback_posts_the_request_to_the_encoded_name_once():
    opener = Opener(FakeResponse({"metadata": {"name": "a b"}}, date="Wed, 27 Nov 2024 10:00:07 GMT"))
    c = client(opener, base_path="/argocd")
    body = {"name": "a b", "id": 3, "prune": True, "dryRun": False, "project": "p"}
    assert c.rollback_application("a b", body) == {"metadata": {"name": "a b"}}
    call = opener.calls[0]
    assert call["url"] == "https://argocd.example.com/argocd/api/v1/applications/a%20b/rollback"
    assert call["method"] == "POST"
    assert call["headers"]["Content-Type"] == "application/json"
    assert json.loads(call["data"]) == body
    assert c.last_response_date.isoformat() == "2024-11-27T10:00:07+00:00"


@pytest.mark.parametrize("failure", [http_error(503, b"busy"), URLError("reset")])
def test_rollback_is_never_retried(failure):
    opener = Opener(failure, FakeResponse({}))
    with pytest.raises(ac.ArgoCDError):
        client(opener).rollback_application("a", {"name": "a", "id": 0})
    assert len(opener.calls) == 1
