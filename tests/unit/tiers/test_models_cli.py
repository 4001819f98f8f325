"""`inferstream models ...` on a models directory of links to the repository's fraud versions."""

from __future__ import annotations

import json

from pipeline.cli import main

from .conftest import CANDIDATE, LARGE, SMALL


def test_list_route_set_show_and_refusals(models_dir, monkeypatch, capsys):
    monkeypatch.setenv("INFERSTREAM_MODELS_DIR", str(models_dir))
    assert main(["models", "list", "--json"]) == 0
    rows = {r["version"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows[LARGE]["roles"] == ["serving (highest version, no policy)"]
    assert rows[SMALL]["kind"] == "small" and rows[SMALL]["units_per_row"] > 0
    assert rows[LARGE]["units_per_row"] > rows[SMALL]["units_per_row"]  # from costs.json
    assert rows[SMALL]["roc_auc"] > 0.9

    assert main(["models", "route", "set", "--primary", LARGE, "--cascade-small", SMALL,
                 "--bands", "0.1:0.2", "--shadow", CANDIDATE]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["models", "route", "show", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["policy"]["cascade"]["bands"] == [[0.1, 0.2]]
    assert shown["policy"]["shadow"] == [CANDIDATE]
    assert shown["serving"] == [SMALL, LARGE]

    before = (models_dir / "fraud" / "routing.json").read_text()
    assert main(["models", "route", "set", "--canary", CANDIDATE, "--canary-share", "101"]) == 2
    assert "outside 0-100 %" in capsys.readouterr().err
    assert main(["models", "route", "set", "--primary", "3.0.0"]) == 2
    assert "does not have" in capsys.readouterr().err
    assert (models_dir / "fraud" / "routing.json").read_text() == before, "nothing written"

    assert main(["models", "list", "--json"]) == 0
    rows = {r["version"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows[LARGE]["roles"] == ["primary", "cascade-large"]
    assert rows[CANDIDATE]["roles"] == ["shadow"]


def test_canary_promote_by_hand_and_status(models_dir, monkeypatch, capsys):
    import pipeline.cli.models_cmd as models_cmd
    from pipeline.tiers.canary import CanaryStore

    from .test_canary import FakeRedis

    redis = FakeRedis()
    redis.degraded, redis.url = False, "redis://fake"
    monkeypatch.setattr(models_cmd, "_canary_store", lambda: CanaryStore(redis, "c:"))
    published = []  # the event goes to <stream>.events (the broker's part: test_tiers.py)
    monkeypatch.setattr(models_cmd, "_publish_events", lambda e: e.publish_now(published.extend))
    monkeypatch.setenv("INFERSTREAM_MODELS_DIR", str(models_dir))
    assert main(["models", "canary", "promote"]) == 1
    assert "has no canary" in capsys.readouterr().err
    assert main(["models", "route", "set", "--primary", LARGE, "--canary", CANDIDATE,
                 "--canary-share", "10"]) == 0  # fmt: skip
    assert main(["models", "canary", "rollback", "--reason", "pager went off"]) == 0
    capsys.readouterr()
    assert main(["models", "canary", "status", "--json"]) == 0
    (status,) = json.loads(capsys.readouterr().out)
    assert (status["stable"], status["candidate"], status["state"]) == (
        LARGE,
        CANDIDATE,
        "rolled-back",
    )
    assert status["events"][0]["reason"] == "pager went off"
    assert status["events"][0]["automatic"] is False

    from pipeline.codec import AvroDeserializer, registry_from_settings
    from pipeline.config import settings

    (message,) = published
    assert message.topic == "fraud.events"
    assert message.key == f"{LARGE}->{CANDIDATE}".encode()
    event = AvroDeserializer(registry_from_settings(settings()))(message.value)
    assert (event["kind"], event["automatic"], event["reason"]) == (
        "rollback",
        False,
        "pager went off",
    )
    assert (event["stable"], event["candidate"], event["share_percent"]) == (LARGE, CANDIDATE, 10)
    assert event["worker"].startswith("cli@")
