"""Completion webhooks on real sockets: the operator's URL and per-project subscriptions (`/v1/webhooks`),
signed, retried after a failure, logged; their bodies are the resources as their GET routes answer them;
URLs reaching private networks are refused; one project never sees another's subscriptions or events."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from polarity_keystone.server import (
    SIGNATURE_HEADER,
    ServerSettings,
    create_api_key,
    sign_webhook,
    verify_webhook,
)
from polarity_keystone.store import ProjectRecord, WebhookDeliveryRecord, WebhookRecord, open_store
from tests.server.server_api import Api, MakeApi, spec_yaml, unreachable_engine, wait_until_finished
from tests.waiting import wait_until

PUBLIC_URL = "http://keystone.test"
"""The in-process app's address: the links in webhook bodies then match what GET answers."""


class Receiver:
    """A real HTTP endpoint that answers its deliveries with `statuses` in turn (then 200)."""

    def __init__(self, *statuses: int) -> None:
        self.deliveries: queue.Queue[tuple[dict[str, str], bytes]] = queue.Queue()
        self.answers = list(statuses)
        """The statuses still to answer with, in turn (then 200): clear it to answer 200 from now on."""
        received, answers = self.deliveries, self.answers

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.put(({k: v for k, v in self.headers.items()}, body))
                self.send_response(answers.pop(0) if answers else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/keystone"
        self.thread = threading.Thread(target=self.server.serve_forever)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    """Append receivers to this list; they are closed after the test."""
    made: list[Receiver] = []
    yield made
    for receiver in made:
        receiver.close()


def _run(api: Api) -> str:
    """A run that fails at once (no Docker engine): it ends, which is all a webhook needs."""
    api.upload(spec_yaml())
    run_id: str = api.client.post("/v1/runs", json={"spec_id": "hello"}).json()["id"]
    wait_until_finished(api, run_id)
    return run_id


def _subscribe(client: httpx.Client, url: str, *events: str, secret: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"url": url, "events": list(events)}
    if secret:
        body["secret"] = secret
    response = client.post("/v1/webhooks", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _second_project(api: Api) -> httpx.Client:
    store = api.context.store
    store.add_project(ProjectRecord("proj-b", "b", datetime.now(UTC)))
    key, _ = create_api_key(store, "b", "proj-b")
    return api.as_key(key)


def test_a_subscription_gets_the_run_signed_retried_after_a_500_and_logged(
    make_api: MakeApi, receivers: list[Receiver]
) -> None:
    receivers.append(receiver := Receiver(500))
    api = make_api(
        backend_factory=unreachable_engine, webhook_allow_private_networks=True, public_url=PUBLIC_URL
    )
    webhook = _subscribe(api.client, receiver.url, "run.completed", secret="whsec-a-test-secret")

    run_id = _run(api)
    first_headers, first_body = receiver.deliveries.get(timeout=20)
    retry_headers, retry_body = receiver.deliveries.get(timeout=20)

    assert retry_body == first_body
    assert json.loads(first_body) == api.client.get(f"/v1/runs/{run_id}").json()  # the Run itself
    assert json.loads(first_body)["status"] == "errored"
    for headers, body in ((first_headers, first_body), (retry_headers, retry_body)):
        assert headers["Keystone-Event"] == "run.completed"
        assert headers["Keystone-Event-Id"].startswith("evt_")
        assert headers["Keystone-Delivery"] == first_headers["Keystone-Delivery"]
        assert headers["Host"] == receiver.url.split("/")[2]
        assert verify_webhook("whsec-a-test-secret", body, headers[SIGNATURE_HEADER])
        assert not verify_webhook("another-secret", body, headers[SIGNATURE_HEADER])

    def delivered() -> list[dict[str, Any]] | None:
        log: list[dict[str, Any]] = api.client.get(f"/v1/webhooks/{webhook['id']}/deliveries").json()
        return log if log and log[0]["state"] == "delivered" else None

    logged = wait_until(delivered, 10, "the delivery logged as delivered")
    assert logged is not None
    [entry] = logged
    assert entry["id"] == first_headers["Keystone-Delivery"]
    assert entry["event_id"] == first_headers["Keystone-Event-Id"]
    assert (entry["event_type"], entry["attempts"], entry["status_code"], entry["error"]) == (
        "run.completed",
        2,
        200,
        None,
    )


def test_replica_completed_carries_the_suite_and_only_subscribers_of_an_event_get_it(
    make_api: MakeApi, receivers: list[Receiver]
) -> None:
    receivers.append(suites := Receiver())
    api = make_api(
        backend_factory=unreachable_engine, webhook_allow_private_networks=True, public_url=PUBLIC_URL
    )
    secret = _subscribe(api.client, suites.url, "replica.completed")["secret"]
    _run(api)  # not an event this subscription asked for

    suite_id = api.client.post("/v1/replicas", json={"spec_id": "hello", "n_replicas": 2}).json()["id"]
    headers, body = suites.deliveries.get(timeout=20)

    assert headers["Keystone-Event"] == "replica.completed"
    assert verify_webhook(secret, body, headers[SIGNATURE_HEADER])
    assert json.loads(body) == api.client.get(f"/v1/replicas/{suite_id}").json()
    assert json.loads(body)["status"] == "errored"
    assert suites.deliveries.empty()


def test_the_secret_is_answered_once_and_subscriptions_list_get_and_delete(api: Api) -> None:
    created = _subscribe(api.client, "http://93.184.215.14/hook", "run.completed", "run.completed")
    _subscribe(api.client, "https://93.184.215.14:8443/other", "experiment.completed", "replica.completed")

    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 40
    assert created["events"] == ["run.completed"]
    fetched = api.client.get(f"/v1/webhooks/{created['id']}").json()
    assert "secret" not in fetched
    assert fetched == {key: value for key, value in created.items() if key != "secret"}
    first_page = api.client.get("/v1/webhooks", params={"limit": 1})
    assert [item["id"] for item in first_page.json()] == [created["id"]]
    second_page = api.client.get("/v1/webhooks", params={"cursor": first_page.headers["X-Next-Cursor"]})
    assert [item["url"] for item in second_page.json()] == ["https://93.184.215.14:8443/other"]
    assert all("secret" not in item for item in second_page.json())

    assert api.client.delete(f"/v1/webhooks/{created['id']}").status_code == 204
    assert api.client.get(f"/v1/webhooks/{created['id']}").status_code == 404
    assert api.client.delete(f"/v1/webhooks/{created['id']}").status_code == 404
    assert api.client.get(f"/v1/webhooks/{created['id']}/deliveries").status_code == 404


REFUSED = {
    "http://169.254.169.254/latest/meta-data/": "link-local",
    "http://127.0.0.1:8080/hook": "loopback",
    "http://localhost/hook": "loopback",
    "http://[::1]/hook": "loopback",
    "http://[::ffff:10.0.0.1]/hook": "private",
    "http://10.1.2.3/hook": "private",
    "http://192.168.0.10/hook": "private",
    "http://0.0.0.0/hook": "unspecified",
    "http://224.0.0.1/hook": "multicast",
    "ftp://93.184.215.14/hook": "http:// or https://",
    "file:///etc/passwd": "http:// or https://",
    "http://user:pw@93.184.215.14/hook": "credentials",
    "http://no-such-host.invalid/hook": "does not resolve",
    "http://93.184.215.14/" + "a" * 2100: "at most",
}
"""URLs a subscription may not name without the operator allowing private networks, and why."""


def test_urls_reaching_private_networks_or_of_another_kind_are_refused(make_api: MakeApi) -> None:
    api = make_api(write_rate=100.0)
    for url, reason in REFUSED.items():
        response = api.client.post("/v1/webhooks", json={"url": url, "events": ["run.completed"]})

        assert response.status_code == 400, (url, response.text)
        assert reason in response.json()["message"], url
    assert api.client.get("/v1/webhooks").json() == []


def test_private_addresses_are_refused_at_delivery_too(make_api: MakeApi, receivers: list[Receiver]) -> None:
    """A name that resolved to a public address when subscribed may resolve to a private one later: the
    address is checked again before each attempt (here the subscription was stored without the check)."""
    receivers.append(receiver := Receiver())
    api = make_api(backend_factory=unreachable_engine)
    subscription = WebhookRecord(
        "wh_stored", "default", receiver.url, ["run.completed"], "whsec-stored-secret", datetime.now(UTC)
    )
    api.context.store.add_webhook(subscription, max_per_project=50)

    _run(api)

    def attempted() -> dict[str, Any] | None:
        log = api.client.get("/v1/webhooks/wh_stored/deliveries").json()
        return log[0] if log and log[0]["attempts"] >= 1 else None

    entry = wait_until(attempted, 10, "a refused attempt logged")
    assert entry is not None
    assert entry["status_code"] is None
    assert "loopback" in entry["error"]
    assert receiver.deliveries.empty()


def test_a_deleted_subscription_gets_no_more_retries(make_api: MakeApi, receivers: list[Receiver]) -> None:
    receivers.append(receiver := Receiver(*[500] * 6))
    api = make_api(backend_factory=unreachable_engine, webhook_allow_private_networks=True)
    webhook = _subscribe(api.client, receiver.url, "run.completed")
    _run(api)
    receiver.deliveries.get(timeout=20)

    api.client.delete(f"/v1/webhooks/{webhook['id']}")
    time.sleep(4)  # without the deletion, attempts 2 to 4 come 0.5, 1.5 and 3.5 s after the first

    assert receiver.deliveries.qsize() <= 1  # the attempt that found the subscription gone


def test_bounds_on_events_and_subscriptions_per_project(api: Api) -> None:
    def create(body: dict[str, Any]) -> httpx.Response:
        return api.client.post("/v1/webhooks", json=body)

    url = "http://127.0.0.1:9/hook"  # the test server allows private networks only when told: not here
    assert create({"url": url, "events": []}).status_code == 400
    assert create({"url": url, "events": ["run.started"]}).status_code == 400
    assert create({"url": url, "events": ["run.completed"], "secret": "short"}).status_code == 400
    for index in range(50):
        stored = WebhookRecord(f"wh_{index}", "default", url, ["run.completed"], "s" * 16, datetime.now(UTC))
        api.context.store.add_webhook(stored, max_per_project=50)

    refused = create({"url": "http://93.184.215.14/hook", "events": ["run.completed"]})
    assert refused.status_code == 400
    assert "50" in refused.json()["message"]


def test_another_projects_subscriptions_and_events_are_invisible(
    make_api: MakeApi, receivers: list[Receiver]
) -> None:
    receivers.extend([mine := Receiver(), theirs := Receiver()])
    api = make_api(backend_factory=unreachable_engine, webhook_allow_private_networks=True)
    other = _second_project(api)
    webhook = _subscribe(api.client, mine.url, "run.completed")
    _subscribe(other, theirs.url, "run.completed")

    for path in (f"/v1/webhooks/{webhook['id']}", f"/v1/webhooks/{webhook['id']}/deliveries"):
        assert other.get(path).status_code == 404
    assert other.delete(f"/v1/webhooks/{webhook['id']}").status_code == 404
    assert [item["url"] for item in other.get("/v1/webhooks").json()] == [theirs.url]

    _run(api)
    mine.deliveries.get(timeout=20)
    assert theirs.deliveries.empty()
    assert api.client.get(f"/v1/webhooks/{webhook['id']}").status_code == 200


def test_a_delivery_log_keeps_only_the_newest_entries(store_url: str) -> None:
    store = open_store(store_url)
    try:
        start = datetime.now(UTC)
        store.add_webhook(
            WebhookRecord("wh_1", "default", "http://h/", ["run.completed"], "s", start), max_per_project=1
        )
        for index in range(5):
            moment = start + timedelta(seconds=index)
            entry = WebhookDeliveryRecord(
                f"dlv_{index}",
                "wh_1",
                f"evt_{index}",
                "run.completed",
                "pending",
                0,
                None,
                None,
                moment,
                moment,
            )
            store.put_webhook_delivery(entry, keep=3)
        assert not store.put_webhook_delivery(
            WebhookDeliveryRecord(
                "dlv_x", "wh_gone", "evt_x", "run.completed", "pending", 0, None, None, start, start
            ),
            keep=3,
        )

        assert [entry.id for entry in store.webhook_deliveries("wh_1")] == ["dlv_2", "dlv_3", "dlv_4"]
        assert store.webhook_deliveries("wh_gone") == []
        store.delete_webhook("default", "wh_1")
        assert store.webhook_deliveries("wh_1") == []
    finally:
        store.close()


def test_a_delivery_a_stopped_server_left_pending_is_resumed_by_the_next(
    make_api: MakeApi, receivers: list[Receiver]
) -> None:
    """A server stopped while a delivery waited to retry (its log entry `pending`, two attempts made) and
    its lease ran out: the next server's sweep sends it, with the same delivery and event ids and the
    body made again from the run, and logs the third attempt. A live server's pending delivery is left
    to it; one logged before deliveries named their experiment fails saying why."""
    receivers.append(receiver := Receiver())
    api = make_api(
        backend_factory=unreachable_engine,
        webhook_allow_private_networks=True,
        public_url=PUBLIC_URL,
        lease_s=1.5,
    )
    run_id = _run(api)  # before the subscription: this server sends it nothing itself
    webhook = _subscribe(api.client, receiver.url, "run.completed", secret="whsec-a-test-secret")
    store, now = api.context.store, datetime.now(UTC)
    store.renew_instance("stopped-server", timedelta(milliseconds=1))
    store.renew_instance("live-server", timedelta(hours=1))

    def pending(delivery_id: str, instance_id: str | None, experiment_id: str | None) -> None:
        entry = WebhookDeliveryRecord(
            delivery_id, webhook["id"], f"evt_{delivery_id}", "run.completed", "pending", 2, 500,
            "answered 500", now, now, experiment_id, instance_id,
        )  # fmt: skip
        assert store.put_webhook_delivery(entry, keep=100)

    pending("dlv_left", "stopped-server", run_id)
    pending("dlv_live", "live-server", run_id)
    pending("dlv_legacy", None, None)
    headers, body = receiver.deliveries.get(timeout=20)

    assert (headers["Keystone-Delivery"], headers["Keystone-Event-Id"]) == ("dlv_left", "evt_dlv_left")
    assert json.loads(body) == api.client.get(f"/v1/runs/{run_id}").json()
    assert verify_webhook("whsec-a-test-secret", body, headers[SIGNATURE_HEADER])

    def settled() -> dict[str, Any] | None:
        log = {e["id"]: e for e in api.client.get(f"/v1/webhooks/{webhook['id']}/deliveries").json()}
        done = log["dlv_left"]["state"] == "delivered" and log["dlv_legacy"]["state"] == "failed"
        return log if done else None

    log = wait_until(settled, 20, "the resumed delivery delivered and the legacy one failed")
    assert log is not None
    assert (log["dlv_left"]["attempts"], log["dlv_left"]["status_code"]) == (3, 200)
    assert "its server stopped before it was delivered" in log["dlv_legacy"]["error"]
    assert log["dlv_live"]["state"] == "pending" and log["dlv_live"]["attempts"] == 2
    assert receiver.deliveries.empty()


# --- the operator's webhook_url -----------------------------------------------------------------------


def test_the_operators_url_gets_every_event_signed_with_its_secret(
    make_api: MakeApi, receivers: list[Receiver]
) -> None:
    receivers.append(receiver := Receiver(500))
    api = make_api(backend_factory=unreachable_engine, webhook_url=receiver.url, webhook_secret="whsec-test")
    api.upload(spec_yaml())
    experiment_id = api.client.post("/v1/experiments", json={"name": "s", "spec_id": "hello"}).json()["id"]

    api.client.post(f"/v1/experiments/{experiment_id}/run")
    first_headers, first_body = receiver.deliveries.get(timeout=20)
    retry_headers, retry_body = receiver.deliveries.get(timeout=20)

    assert retry_body == first_body
    for headers, body in ((first_headers, first_body), (retry_headers, retry_body)):
        assert headers["Keystone-Event"] == "experiment.completed"
        assert verify_webhook("whsec-test", body, headers[SIGNATURE_HEADER])
    sent, answered = json.loads(first_body), api.client.get(f"/v1/experiments/{experiment_id}").json()
    del sent["ran_at"], answered["ran_at"]  # an experiment without results was "ran" when it is read
    assert sent == answered
    assert json.loads(first_body)["status"] == "failed"


def test_a_signature_is_bound_to_the_body_and_expires() -> None:
    body = b'{"status": "passed"}'
    header = sign_webhook("s", body)

    assert verify_webhook("s", body, header)
    assert not verify_webhook("s", body + b" ", header)
    assert not verify_webhook("s", body, sign_webhook("s", body, timestamp=1_000_000))
    assert not verify_webhook("s", body, "garbage")


def test_a_webhook_url_without_a_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="webhook_secret"):
        ServerSettings(store_url="sqlite:///x.db", webhook_url="http://example.invalid/hook")
