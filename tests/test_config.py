"""Config file + environment precedence, and clear errors for bad files."""

from __future__ import annotations

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
