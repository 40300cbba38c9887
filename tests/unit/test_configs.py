"""Every config group composes and instantiates: each model config through Hydra into the objects
training builds from it (the network and one forward pass, or a LightGBM booster), and each value
of the HPO search space into a config that composes and builds too. (The pod config is checked
with the pod specs, tests/dags/test_pod_specs.py.)"""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from gogoku.hpo.search import load_search_config
from gogoku.model.gat_graph import EDGE_DIM, GraphParams
from gogoku.model.losses import LossConfig
from gogoku.model.network import ATFTGATFAN, ATFTConfig, count_parameters
from gogoku.train.atft import TrainSettings
from gogoku.train.run import compose_config, config_dir

MODELS = sorted(p.stem for p in (config_dir() / "model").glob("*.yaml"))
N_FEATURES = 7


def build(model: str, overrides: list[str] | None = None) -> object:
    """What training builds from the composed config of `model`."""
    cfg = compose_config(model, overrides or [])
    horizons = [int(h) for h in cfg.horizons]
    m = OmegaConf.to_container(cfg.model, resolve=True)
    assert isinstance(m, dict) and m["name"] == model
    if model == "lightgbm":
        x = np.random.default_rng(0).normal(size=(400, N_FEATURES))
        data = lgb.Dataset(x, label=x[:, 0], params={"verbosity": -1})
        booster = lgb.train({**m["params"], "min_data_in_leaf": 20}, data, num_boost_round=2)
        assert booster.num_trees() >= 1
        return booster
    settings = TrainSettings.from_mapping(m.get("training", {}), seed=0)
    arch = ATFTConfig.from_mapping(m.get("architecture", {}), n_features=N_FEATURES, horizons=tuple(horizons),
                                   seq_len=settings.seq_len)
    LossConfig.from_mapping(m.get("loss", {}), arch.quantiles, horizons)
    graph = dict(m.get("graph", {}))
    graph.pop("return_col", None)
    GraphParams(**graph)
    net = ATFTGATFAN(arch)
    assert count_parameters(net) > 0 and settings.total_epochs > 0
    net.set_components(adaptive_norm=True, gat=True)
    n = 5
    edge_index = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])
    out = net(torch.randn(n, settings.seq_len, N_FEATURES), edge_index, torch.rand(4, EDGE_DIM))
    assert set(out["point"]) == set(horizons) and all(v.shape == (n,) for v in out["point"].values())
    return net


def test_the_model_group_has_every_model_the_dags_offer() -> None:
    assert set(MODELS) == {"lightgbm", "atft_gat_fan", "atft_tiny"}


@pytest.mark.parametrize("model", MODELS)
def test_every_model_config_composes_and_builds(model: str) -> None:
    build(model)


def test_every_hpo_choice_composes_and_builds() -> None:
    search = load_search_config(Path(config_dir()) / "hpo" / "default.yaml")
    for key, spec in search["space"].items():
        values = spec["choices"] if spec["type"] == "categorical" else [spec["low"], spec["high"]]
        for value in values:
            build("atft_tiny", [f"{key}={value}"])
