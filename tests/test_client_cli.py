"""The `reelrank` CLI against the in-process fake server (and stand-ins for server modules)."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from client.cli import build_parser, main
from client.fake_server import FakeRankingService, FakeServer, start_fake_server


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    srv = start_fake_server(FakeRankingService())
    yield srv
    srv.stop()


def test_rank_json_parses(server: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["rank", "--user", "u7", "--num", "5", "--json", "--target", server.target,
         "--event", "item-1:like", "--event", "item-2:complete:0.9", "--exclude", "x",
         "--policy", "exposure"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    data = json.loads(out)
    assert len(data["items"]) == 5
    assert data["snapshot_version"] == "fake-snapshot-1"
    assert data["fairness_report"]["policy"] == "FAIRNESS_POLICY_EXPOSURE"
    sent = server.ranking.requests[-1]
    assert [e.item_id for e in sent.recent_events] == ["item-1", "item-2"]
    assert sent.recent_events[1].watch_ratio == pytest.approx(0.9)
    assert list(sent.exclude_item_ids) == ["x"]


def test_rank_table(server: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rank", "--user", "u7", "--num", "3", "--target", server.target]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("user u7: 3 items from snapshot fake-snapshot-1")
    assert lines[1].split() == ["#", "item", "creator", "group", "score"]
    assert lines[2].split()[0] == "1" and lines[4].split()[0] == "3"
    assert any(line.startswith("fairness: policy") for line in lines)


def test_rank_explain(server: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rank", "--user", "u7", "--num", "2", "--explain", "--target", server.target]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[1].split()
    assert header[-6:] == ["keyword", "embedding", "popularity", "freshness", "ranking", "sources"]
    assert "ann" in out.splitlines()[2]
    assert "timings: retrieval 1.20 ms" in out
    assert server.ranking.requests[-1].debug


def test_rank_error_exit_1(server: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["rank", "--user", "error:NOT_FOUND", "--target", server.target])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err.strip() == "error: NOT_FOUND: injected NOT_FOUND for error:NOT_FOUND"
    assert captured.out == ""


def test_rank_unreachable_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rank", "--user", "u", "--target", "127.0.0.1:1", "--timeout", "0.5"]) == 1
    assert capsys.readouterr().err.startswith("error: UNAVAILABLE: ")


@pytest.mark.parametrize(
    "argv",
    [
        ["rank"],
        ["rank", "--user", "u", "--event", "item-1"],
        ["rank", "--user", "u", "--event", "item-1:teleport"],
        ["rank", "--user", "u", "--policy", "fun"],
        ["rank", "--user", "u", "--timeout", "0"],
        ["loadtest", "--rate", "10", "--concurrency", "2"],
        ["loadtest", "--events-per-request", "2"],
        ["frobnicate"],
        [],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "error" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--help"], ["rank", "demo-data", "build", "admin", "loadtest"]),
        (["rank", "--help"], ["--user", "--num", "--json", "--explain", "--policy", "--event",
                              "--exclude", "--target", "--timeout"]),
        (["demo-data", "--help"], ["--items", "--users", "--seed", "--out"]),
        (["build", "--help"], ["--interactions", "--items", "--out", "--config"]),
        (["admin", "--help"], ["status", "rebuild", "REELRANK_ADMIN_TOKEN"]),
        (["admin", "status", "--help"], ["--token-file", "--target"]),
        (["admin", "rebuild", "--help"], ["--interactions", "--items", "--wait", "--no-activate",
                                          "--token-file"]),
        (["loadtest", "--help"], ["--concurrency", "--rate", "--arrival", "--duration",
                                  "--warmup", "--processes", "--deadline", "--users-file",
                                  "--user-prefix", "--num-users", "--zipf-s", "--cold-fraction",
                                  "--events-per-request", "--items-file", "--num-results",
                                  "--json", "--compare"]),
    ],
)  # fmt: skip
def test_help(argv: list[str], expected: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 0
    out = capsys.readouterr().out
    for word in expected:
        assert word in out


def test_every_option_has_help() -> None:
    import argparse

    def walk(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from walk(sub)
            else:
                yield action

    for action in walk(build_parser()):
        assert action.help, action.option_strings


# ------------------------------------------------------------------ server-side commands


def _install(monkeypatch: pytest.MonkeyPatch, name: str, **attrs: Any) -> None:
    module = types.ModuleType(name)
    for key, value in attrs.items():
        setattr(module, key, value)
    monkeypatch.setitem(sys.modules, name, module)


def test_demo_data_calls_generate(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[tuple[Any, ...]] = []

    def generate(n_items: int, n_users: int, seed: int, out: Path) -> dict[str, Any]:
        calls.append((n_items, n_users, seed, out))
        return {"items": n_items, "interactions": 1234}

    _install(monkeypatch, "server.data.synthetic", generate=generate)
    argv = ["demo-data", "--items", "50", "--users", "7", "--seed", "3", "--out", str(tmp_path)]
    assert main(argv) == 0
    assert calls == [(50, 7, 3, tmp_path)]
    assert json.loads(capsys.readouterr().out) == {"items": 50, "interactions": 1234}


def test_build_prints_version_and_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dataclasses import dataclass

    @dataclass
    class BuildConfig:
        embedding_dim: int = 64
        protected_groups: tuple[str, ...] = ("new_creator",)

    seen: dict[str, Any] = {}

    def build_snapshot(
        interactions_path: Path, items_path: Path, out_dir: Path, config: Any = None
    ) -> dict[str, Any]:
        if "bad" in str(interactions_path):
            raise ValueError("interactions.csv row 3, column ts: 'x' is not a timestamp")
        seen["config"] = config
        return {"version": "20250101-abc", "path": str(out_dir / "20250101-abc")}

    _install(monkeypatch, "server.index.builder", build_snapshot=build_snapshot,
             BuildConfig=BuildConfig)  # fmt: skip
    cfg = tmp_path / "build.json"
    cfg.write_text('{"embedding_dim": 8, "protected_groups": ["a", "b"]}')
    base = ["build", "--items", "i.csv", "--out", str(tmp_path)]
    assert main([*base, "--interactions", "x.csv", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["snapshot version: 20250101-abc", f"snapshot path: {tmp_path / '20250101-abc'}"]
    assert seen["config"] == BuildConfig(8, ("a", "b"))

    assert main([*base, "--interactions", "bad.csv"]) == 1
    assert capsys.readouterr().err.strip() == (
        "error: interactions.csv row 3, column ts: 'x' is not a timestamp"
    )
    cfg.write_text('{"embedding_dims": 8}')
    assert main([*base, "--interactions", "x.csv", "--config", str(cfg)]) == 2
    assert "unknown field(s) embedding_dims" in capsys.readouterr().err


def test_admin_without_token_is_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("REELRANK_ADMIN_TOKEN", raising=False)
    assert main(["admin", "status", "--target", "127.0.0.1:1"]) == 2
    assert "REELRANK_ADMIN_TOKEN" in capsys.readouterr().err
