"""Campaigns as pytest items (issue 11): spread by pytest-xdist over executors, identical to a local run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sim.search.campaign import run_one
from sim.world.workload import get_profile
from sim.zoo.mutants import apply

SEEDS = range(24, 48)  # the canary fires on some of them (it fires on ~10% of seeds)
# Kept on the config: a context manager nobody references is collected, and its exit undoes the patch.
CANARY = ("from sim.zoo.mutants import apply\n\n\ndef pytest_configure(config):\n"
          "    config.stepsim_canary = apply('canary')\n    config.stepsim_canary.__enter__()\n")


def _distributed(tmp_path: Path, *executors: str, conftest: str = "") -> tuple[int, list[dict[str, Any]], str]:
    """Run the campaign in a fresh pytest process with the given xdist options; its outcomes and output."""
    (tmp_path / "conftest.py").write_text(conftest)
    report = tmp_path / "outcomes.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "sim.search.campaign_pytest", "--campaign", "default",
         "--campaign-seeds", f"{SEEDS.start}:{SEEDS.stop}", "--campaign-report", str(report),
         "--campaign-reports", str(tmp_path / "reports"), "-p", "no:cacheprovider", "-q", *executors],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    outcomes = json.loads(report.read_text()) if report.exists() else []
    return proc.returncode, outcomes, proc.stdout + proc.stderr


def _local() -> list[dict[str, Any]]:
    profile = get_profile("default")
    return [{"seed": o.seed, "ok": o.ok, "digest": o.digest, "violation": o.violation}
            for o in (run_one(seed, profile)[0] for seed in SEEDS)]


@pytest.mark.parametrize("executors", [("-n", "2"), ("--tx", "popen", "--tx", "popen", "--dist", "load")],
                         ids=["n2", "two-popen-executors"])
def test_a_distributed_campaign_equals_the_local_one(tmp_path: Path, executors: tuple[str, ...]) -> None:
    """Two xdist executors run every seed once, with the same outcomes and trace digests as one process."""
    code, outcomes, output = _distributed(tmp_path, *executors)
    assert code == 0, output
    assert f"{len(SEEDS)} passed" in output
    assert outcomes == _local()


def test_a_failing_seed_fails_its_item_with_the_replay_line_and_matches_locally(tmp_path: Path) -> None:
    """Under a broken engine (the canary mutant), the same seeds fail distributed as locally, each with its
    violation, its `stepsim replay` line and its saved trace."""
    with apply("canary"):
        local = _local()
    failing = [o["seed"] for o in local if not o["ok"]]
    assert failing, "the canary fails about 10% of seeds; none of these failed"
    code, outcomes, output = _distributed(tmp_path, "-n", "2", conftest=CANARY)
    assert code == 1
    assert outcomes == local
    for seed in failing:
        assert f"campaign[default-seed-{seed}]" in output
        assert f"stepsim replay --seed {seed} --profile default" in output
        assert (tmp_path / "reports" / "failures" / f"default-seed-{seed}" / "trace.jsonl").exists()
