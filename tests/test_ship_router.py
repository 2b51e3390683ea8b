"""scripts/ship_router.py and the shipped router: every default-zoo candidate's centring is memoised, so
`modelsat route` pays no per-candidate forwards right after install."""

import sys

import numpy as np
import pytest

from modelsat.cli.route import load_zoo
from modelsat.routers.modelsat.model import profile_key
from modelsat.routers.modelsat.router import SHIPPED_LM_NAME, ModelSATRouter, shipped_router_dir
from tests.conftest import load_script
from test_modelsat_model import PROFILES, synthetic_records


def test_ship_router_copies_a_router_and_memoises_the_default_zoo(tmp_path, monkeypatch, capsys):
    overrides = {"model": {"prior": "fitted", "lm_center_items": 5, "encoder": "tiny"}}
    router = ModelSATRouter(preset="tiny", overrides=overrides).fit(synthetic_records(4), PROFILES)
    src = router.save(tmp_path / "trained")
    monkeypatch.setattr(sys, "argv", ["ship_router.py", str(src), "--dest", str(tmp_path / "shipped")])
    load_script("ship_router").main()
    assert f"memoised {len(load_zoo(None)[1])} candidates" in capsys.readouterr().out
    shipped = ModelSATRouter.load(tmp_path / "shipped")
    _, zoo = load_zoo(None)
    assert {profile_key(p) for p in zoo} <= set(shipped.offset_cache_)
    np.testing.assert_array_equal(shipped.lm_offsets(zoo), router.lm_offsets(zoo))
    monkeypatch.setattr(sys, "argv", ["ship_router.py", str(tmp_path / "nowhere"), "--dest", str(tmp_path / "x")])
    with pytest.raises(SystemExit, match="not a modelsat router folder"):
        load_script("ship_router").main()
    assert not (tmp_path / "x").exists()


def test_the_shipped_router_has_every_default_zoo_candidate_centred_already():
    router = ModelSATRouter.load(shipped_router_dir(SHIPPED_LM_NAME))
    if not router.preset_.model.lm_center_items:
        pytest.skip("the shipped router does not centre its LM term")
    _, zoo = load_zoo(None)
    missing = [p.model for p in zoo if profile_key(p) not in router.offset_cache_]
    assert not missing, f"run scripts/ship_router.py: the shipped router would centre {missing} on every route"
