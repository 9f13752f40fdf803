"""Config file + environment precedence, and clear errors for bad files."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from server.config import ENV_VARS, DataSource, ServerConfig
from server.config_file import ConfigError, from_file, load
from server.main import build_parser, main, resolve_config
from server.pipeline.types import Policy


def test_file_then_env(tmp_path: Path) -> None:
    f = tmp_path / "reelrank.toml"
    f.write_text(
        'port = 6000\nsnapshot_dir = "/data/snaps"\nmetrics_port = 9100\n'
        'data_roots = ["/data/in"]\n[fairness]\npolicy = "exposure"\nmax_per_creator = 3\n'
        'protected_groups = ["new_creator"]\nexposure_target_fraction = 0.9\n'
    )
    cfg = load(f, {"REELRANK_PORT": "7000"})
    assert cfg.port == 7000  # env beats file
    assert cfg.snapshot_dir == Path("/data/snaps")
    assert cfg.metrics_port == 9100
    assert cfg.data_roots == (Path("/data/in"),)
    assert cfg.fairness.policy is Policy.EXPOSURE
    assert cfg.fairness.max_per_creator == 3
    assert cfg.fairness.protected_groups == ("new_creator",)
    assert cfg.fairness.exposure_target_fraction == 0.9
    assert load(None, {}).port == 50051


def test_env_equal_to_a_default_still_beats_the_file(tmp_path: Path) -> None:
    f = tmp_path / "reelrank.toml"
    f.write_text('port = 6000\ntls_cert = "/etc/cert.pem"\ntls_key = "/etc/key.pem"\n')
    assert load(f, {}).port == 6000
    cfg = load(f, {"REELRANK_PORT": str(ServerConfig().port), "REELRANK_TLS_CERT": ""})
    assert cfg.port == ServerConfig().port
    assert cfg.tls_cert is None  # an empty value clears an optional setting the file set
    assert cfg.tls_key == Path("/etc/key.pem")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("prot = 1\n", "unknown setting 'prot'"),
        ('port = "fifty"\n', "port: expected an integer"),
        ('[fairness]\npolicy = "fairest"\n', "fairness.policy"),
        ("[fairness]\ncap = 2\n", "fairness.cap: unknown setting"),
        ("port = \n", "not valid TOML"),
        ('reuse_port = "false"\n', "reuse_port: expected true or false, got 'false'"),
        ('sources = {daily = {items = "/it.csv"}}\n', 'sources: expected {"name": {"interactions"'),
        ('[fairness]\npolicies = ["fastest"]\n', "fairness.policies: 'fastest' is not one of"),
        ("[fairness]\ngroup_targets = [1]\n", "fairness.group_targets: expected [[group, share]"),
        ("[fairness]\nmax_per_creator = 0\n", "fairness: max_items_per_creator must be >= 1"),
        ("[fairness]\nexposure_target_fraction = 5.0\n", "exposure_target_fraction must be in"),
        ("[fairness]\nrepeat_decay = 0.0\n", "fairness: repeat_decay must be in (0, 1]"),
    ],
)
def test_bad_files_name_the_problem(tmp_path: Path, text: str, needle: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(needle)):
        load(f, {})


def test_every_environment_variable_parses_and_is_documented() -> None:
    docs = (Path(__file__).parent.parent / "docs" / "OPERATIONS.md").read_text()
    env = {
        "REELRANK_HOST": "0.0.0.0",
        "REELRANK_PORT": "6000",
        "REELRANK_SNAPSHOTS": "/srv/snaps",
        "REELRANK_WORKERS": "3",
        "REELRANK_PIPELINE_CONCURRENCY": "2",
        "REELRANK_ADMIN_TOKEN": "a",
        "REELRANK_RANKING_TOKEN": "r",
        "REELRANK_DATA_ROOTS": f"/d1{os.pathsep}/d2",
        "REELRANK_SOURCES": '{"daily": {"interactions": "/i.csv", "items": "/it.csv"}}',
        "REELRANK_TLS_CERT": "/c.pem",
        "REELRANK_TLS_KEY": "/k.pem",
        "REELRANK_TLS_CLIENT_CA": "/ca.pem",
        "REELRANK_KEEP_SNAPSHOTS": "7",
        "REELRANK_MIN_ANN_RECALL": "0.8",
        "REELRANK_MIN_NDCG_AT_10": "0.05",
    }
    assert set(env) == set(ENV_VARS)
    assert all(f"`{var}`" in docs for var in ENV_VARS)
    cfg = ServerConfig.from_env(env)
    assert (cfg.host, cfg.port, cfg.max_workers, cfg.keep_snapshots) == ("0.0.0.0", 6000, 3, 7)
    assert cfg.pipeline_concurrency == 2
    assert cfg.snapshot_dir == Path("/srv/snaps") and cfg.tls_client_ca == Path("/ca.pem")
    assert cfg.data_roots == (Path("/d1"), Path("/d2"))
    assert cfg.sources["daily"].items == Path("/it.csv")
    assert (cfg.admin_token, cfg.ranking_token) == ("a", "r")
    assert (cfg.min_ann_recall, cfg.min_ndcg_at_10) == (0.8, 0.05)
    # Empty: optional settings off, others at their defaults.
    blank = ServerConfig.from_env({"REELRANK_MIN_ANN_RECALL": "", "REELRANK_PORT": ""})
    assert blank.min_ann_recall is None and blank.port == ServerConfig().port
    with pytest.raises(ConfigError, match="REELRANK_WORKERS: expected an integer, got 'many'"):
        ServerConfig.from_env({"REELRANK_WORKERS": "many"})


# One setting of each field type: its variable, the text in the environment, the same value in
# TOML, and the value both must give (never the default, so an ignored setting fails). The bool
# settings have no variable: the test maps one, to show text cannot turn "false" into True.
AGREEING = [
    ("REELRANK_HOST", "host", "0.0.0.0", '"0.0.0.0"', "0.0.0.0"),
    ("REELRANK_PORT", "port", "6000", "6000", 6000),
    ("REELRANK_MIN_ANN_RECALL", "min_ann_recall", "1", "1", 1.0),
    ("REELRANK_MIN_NDCG_AT_10", "min_ndcg_at_10", "0.05", "0.05", 0.05),
    ("REELRANK_SNAPSHOTS", "snapshot_dir", "/srv/snaps", '"/srv/snaps"', Path("/srv/snaps")),
    ("REELRANK_TLS_CERT", "tls_cert", "/c.pem", '"/c.pem"', Path("/c.pem")),
    ("REELRANK_ADMIN_TOKEN", "admin_token", "a", '"a"', "a"),
    (
        "REELRANK_DATA_ROOTS",
        "data_roots",
        f"/d1{os.pathsep}{os.pathsep}/d2",
        '["/d1", "/d2"]',
        (Path("/d1"), Path("/d2")),
    ),
    (
        "REELRANK_SOURCES",
        "sources",
        '{"daily": {"interactions": "/i.csv", "items": "/it.csv"}}',
        '{daily = {interactions = "/i.csv", items = "/it.csv"}}',
        {"daily": DataSource(Path("/i.csv"), Path("/it.csv"))},
    ),
    ("REELRANK_REUSE_PORT", "reuse_port", "true", "true", True),
    ("REELRANK_VERIFY_CHECKSUMS", "verify_checksums", "false", "false", False),
]


@pytest.mark.parametrize(("var", "name", "text", "toml", "want"), AGREEING)
def test_environment_and_file_agree_for_each_field_type(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    var: str,
    name: str,
    text: str,
    toml: str,
    want: Any,
) -> None:
    assert ENV_VARS.get(var, name) == name
    monkeypatch.setitem(ENV_VARS, var, name)
    f = tmp_path / "one.toml"
    f.write_text(f"{name} = {toml}\n")
    from_env = getattr(ServerConfig.from_env({var: text}), name)
    from_toml = getattr(from_file(f), name)
    assert want != getattr(ServerConfig(), name)
    assert from_env == from_toml == want
    assert type(from_env) is type(from_toml) is type(want)


@pytest.mark.parametrize(
    ("var", "text", "needle"),
    [
        ("REELRANK_PORT", "abc", "REELRANK_PORT: expected an integer, got 'abc'"),
        (
            "REELRANK_KEEP_SNAPSHOTS",
            "2.5",
            "REELRANK_KEEP_SNAPSHOTS: expected an integer, got '2.5'",
        ),
        (
            "REELRANK_MIN_ANN_RECALL",
            "high",
            "REELRANK_MIN_ANN_RECALL: expected a number, got 'high'",
        ),
        ("REELRANK_SOURCES", "{daily", "REELRANK_SOURCES: expected JSON, got '{daily' (Expecting"),
        (
            "REELRANK_SOURCES",
            '{"daily": {"items": "/it.csv"}}',
            'REELRANK_SOURCES: expected {"name": {"interactions": PATH, "items": PATH}}, got',
        ),
        ("REELRANK_SOURCES", '["/i.csv"]', "REELRANK_SOURCES: expected {"),
        (
            "REELRANK_REUSE_PORT",
            "False",
            "REELRANK_REUSE_PORT: expected true or false, got 'False'",
        ),
    ],
)
def test_bad_environment_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, text: str, needle: str
) -> None:
    monkeypatch.setitem(ENV_VARS, "REELRANK_REUSE_PORT", "reuse_port")
    with pytest.raises(ConfigError, match=re.escape(needle)):
        ServerConfig.from_env({var: text})


def test_a_bad_environment_value_stops_startup_with_its_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REELRANK_PORT", "abc")
    # --processes 0 is refused after the environment is read: were the bad port let through,
    # this fails with that message instead of starting a server.
    assert main(["--processes", "0"]) == 2
    err = capsys.readouterr().err
    assert err == "reelrank-server: error: REELRANK_PORT: expected an integer, got 'abc'\n"


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--pipeline-concurrency", "0"], "pipeline_concurrency must be >= 1, got 0"),
        (["--processes", "0"], "processes must be >= 1, got 0"),
    ],
)
def test_bad_server_flags_name_the_setting(flags: list[str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        resolve_config(build_parser().parse_args(flags))
