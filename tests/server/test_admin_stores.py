"""The control API's store-dependent parts on both stores: reset and scripted jobs."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.helpers import FakeClock
from tests.server.test_admin import ADMIN, admin_settings


@pytest.fixture(params=["memory", "redis"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return request.param


# ------------------------------------------------------------------------------ reset


def test_reset_forgets_jobs_journal_rules_and_scripts(make_app: Callable[..., Flask]) -> None:
    client = make_app(admin_settings()).test_client()
    job_id = client.post("/start", json={"delay": 3600},
                         headers={"Idempotency-Key": "k1"}).get_json()["job_id"]
    client.post("/_admin/faults", json={"route": "cancel", "action": "garbage"}, headers=ADMIN)
    client.post("/_admin/scripts", json={"timeline": [{"at": 1, "result": "error"}]},
                headers=ADMIN)
    assert client.post("/_admin/reset", headers=ADMIN).status_code == 204
    assert client.get(f"/status/{job_id}").status_code == 404
    assert client.get("/status").status_code == 200  # the default job stays
    assert client.get("/_admin/faults", headers=ADMIN).get_json() == {"rules": []}
    assert [e["path"] for e in client.get("/_admin/requests", headers=ADMIN)
            .get_json()["requests"]] == ["/status/" + job_id, "/status"]
    again = client.post("/start", json={"delay": 3600}, headers={"Idempotency-Key": "k1"})
    assert again.status_code == 201 and again.get_json()["job_id"] != job_id  # key freed
    assert "error" not in again.get_json()  # no script left over


# ------------------------------------------------------------------------------ scripts


def scripted_app(make_app: Callable[..., Flask], fake_clock: FakeClock) -> FlaskClient:
    app = make_app(admin_settings(), clock=fake_clock.monotonic, wall_clock=fake_clock.wall,
                   start_worker=False)
    return app.test_client()


def test_scripted_timeline_for_the_next_starts(make_app: Callable[..., Flask],
                                               fake_clock: FakeClock) -> None:
    client = scripted_app(make_app, fake_clock)
    timeline = [{"at": 0, "phase": "queued"}, {"at": 2, "phase": "running", "progress": 0.25},
                {"at": 4, "progress": 0.75}, {"at": 6, "result": "error"}]
    reply = client.post("/_admin/scripts", json={"timeline": timeline, "count": 2}, headers=ADMIN)
    assert reply.status_code == 201 and reply.get_json()["queued"] == 2
    jobs = [client.post("/start").get_json() for _ in range(3)]
    assert [j["phase"] for j in jobs] == ["queued", "queued", "running"]
    seen = []
    for _ in range(4):
        doc = client.get(f"/status/{jobs[0]['job_id']}").get_json()
        seen.append((doc["result"], doc["phase"], doc["progress"], doc.get("eta_seconds")))
        fake_clock.advance(2)
    assert seen == [("pending", "queued", 0.0, 6.0), ("pending", "running", 0.25, 4.0),
                    ("pending", "running", 0.75, 2.0), ("error", "error", 1.0, None)]
    assert client.get(f"/status/{jobs[1]['job_id']}").get_json()["result"] == "error"
    assert client.get(f"/status/{jobs[2]['job_id']}").get_json()["result"] == "completed"


def test_a_start_body_script_without_result_runs_forever(make_app: Callable[..., Flask],
                                                         fake_clock: FakeClock) -> None:
    client = scripted_app(make_app, fake_clock)
    body = {"script": {"timeline": [{"at": 1, "progress": 0.5}]}}
    job = client.post("/start", json=body).get_json()
    fake_clock.advance(30 * 86400)
    doc = client.get(f"/status/{job['job_id']}").get_json()
    assert (doc["result"], doc["phase"], doc["progress"]) == ("pending", "running", 0.5)
    assert "eta_seconds" not in doc
    cancelled = client.post(f"/status/{job['job_id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.get_json()["phase"] == "canceled"

