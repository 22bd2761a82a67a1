"""The real Flower simulation path (Ray), once: stage 1 + DP-CTGAN (1 epoch) on tiny data."""

import json

import pytest

from fedfair.config import compose_config
from strategies.simulation import simulate

pytestmark = pytest.mark.slow  # real Flower runs / a sweep: minutes


def test_run_simulation_end_to_end_with_dpctgan(tmp_path, base_overrides):
    overrides = [o for o in base_overrides if not o.startswith("stage2")]
    overrides += ["stage2=dpctgan", "stage2.epochs=1", "stage2.batch_size=100", "simulation.timeout=300"]
    cfg = compose_config(overrides)
    path = simulate(cfg, tmp_path, overrides)
    res = json.loads(path.read_text())
    assert path == tmp_path / "results.json"
    assert res["communication"]["rounds"] == 1
    assert res["privacy"]["mechanism"] == "dpctgan"
    assert 0 < res["privacy"]["epsilon"] <= 3.0 and res["privacy"]["delta"] == 1e-5
    assert sorted(c["partition_id"] for c in res["per_client"]) == [0, 1]
    assert all(c["n_upload"] == 240 and "n_train" not in c for c in res["per_client"])  # N stays home
    assert res["privacy"]["guarantee"] == "the stage-1 table only (add/remove one row), not the real rows"
    audits = res["privacy"]["audit"]
    assert len(audits) == 2 and all(0 <= a["mia_auc"] <= 1 and a["n_upload"] == 240 for a in audits)
    assert res["sanity"]["majority_rate"] >= 0.5 and isinstance(res["sanity"]["constant_model"], bool)
    assert 0.0 <= res["metrics"]["accuracy"] <= 1.0
    assert all(s > 0 for s in res["timings"]["stage2_s"])
