"""Config file + environment precedence, and clear errors for bad files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from server.config_file import ConfigError, load
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


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("prot = 1\n", "unknown setting 'prot'"),
        ('port = "fifty"\n', "port: expected an integer"),
        ('[fairness]\npolicy = "fairest"\n', "fairness.policy"),
        ("[fairness]\ncap = 2\n", "fairness.cap: unknown setting"),
        ("port = \n", "not valid TOML"),
    ],
)
def test_bad_files_name_the_problem(tmp_path: Path, text: str, needle: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=needle):
        load(f, {})


def test_every_environment_variable_parses_and_is_documented() -> None:
    from server.config import ENV_VARS, ServerConfig

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
    with pytest.raises(ValueError, match="REELRANK_WORKERS='many'"):
        ServerConfig.from_env({"REELRANK_WORKERS": "many"})


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--pipeline-concurrency", "0"], "pipeline_concurrency must be >= 1, got 0"),
        (["--processes", "0"], "processes must be >= 1, got 0"),
    ],
)
def test_bad_server_flags_name_the_setting(flags: list[str], needle: str) -> None:
    from server.main import build_parser, resolve_config

    with pytest.raises(ConfigError, match=needle):
        resolve_config(build_parser().parse_args(flags))
