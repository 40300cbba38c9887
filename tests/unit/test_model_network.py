"""ATFT-GAT-FAN (gogoku.model): shapes, adaptive normalization over time, switchable components."""

from __future__ import annotations

import pytest
import torch

from gogoku.errors import InputError
from gogoku.model.fan_san import AdaptiveNormalization, SliceAdaptiveNorm, causal_window_stats
from gogoku.model.network import ATFTGATFAN, ATFTConfig, components, count_parameters

TINY = ATFTConfig(n_features=6, hidden=16, feature_dim=4, attention_heads=2, gat_heads=(2, 1), seq_len=10,
                  fan_windows=(2, 5), dropout=0.0, gat_dropout=0.0)


def inputs(n: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, TINY.seq_len, TINY.n_features, generator=g)
    src = torch.arange(n)
    edge_index = torch.cat([torch.stack([src, (src + 1) % n]), torch.stack([(src + 1) % n, src])], 1)
    return x, edge_index, torch.rand(edge_index.shape[1], 3, generator=g)


def model(seed: int = 0) -> ATFTGATFAN:
    torch.manual_seed(seed)
    return ATFTGATFAN(TINY).eval()


def test_outputs_shapes_quantile_order_and_selection_weights() -> None:
    out = model()(*inputs())
    assert set(out["quantiles"]) == {1, 5, 10, 20}
    for h, q in out["quantiles"].items():
        assert q.shape == (12, 5)
        assert (q.diff(dim=1) > 0).all()
        torch.testing.assert_close(out["point"][h], q[:, 2])
    assert out["selection"].shape == (12, TINY.seq_len, TINY.n_features)
    torch.testing.assert_close(out["selection"].sum(-1), torch.ones(12, TINY.seq_len))
    assert count_parameters(model()) == count_parameters(model(seed=3))
    torch.testing.assert_close(model(seed=3)(*inputs())["point"][5], model(seed=3)(*inputs())["point"][5])


def test_causal_window_statistics_by_hand() -> None:
    x = torch.tensor([1.0, 2.0, 3.0, 5.0]).view(1, 4, 1)
    mean, var = causal_window_stats(x, 2)
    torch.testing.assert_close(mean.flatten(), torch.tensor([1.0, 1.5, 2.5, 4.0]))
    torch.testing.assert_close(var.flatten(), torch.tensor([0.0, 0.25, 0.25, 1.0]))
    # Step t never sees later steps: changing the last value leaves earlier statistics unchanged.
    later = x.clone()
    later[0, 3] = 100.0
    torch.testing.assert_close(causal_window_stats(later, 2)[0][0, :3], mean[0, :3])


def test_slice_normalization_by_hand() -> None:
    san = SliceAdaptiveNorm(1, slices=3, eps=0.0)
    x = torch.tensor([1.0, 3.0, 5.0, 7.0, 0.0, 4.0]).view(1, 6, 1)  # slices (1,3) (5,7) (0,4)
    torch.testing.assert_close(san(x).flatten(), torch.tensor([-1.0, 1.0, -1.0, 1.0, -1.0, 1.0]))


def test_adaptive_normalization_works_over_time_not_on_a_repeated_vector() -> None:
    norm = AdaptiveNormalization(3, windows=(2, 5), slices=3)
    # Pitfall 2 of docs/model.md: a vector repeated over time. Here every normalized view is zero,
    # so the module passes it through unchanged instead of reducing to a bias.
    flat = torch.randn(4, 1, 3).expand(4, 10, 3)
    torch.testing.assert_close(norm(flat), flat)
    # Two sequences with the same last step but a different history give different last steps.
    a = torch.randn(1, 10, 3)
    b = a.clone()
    b[:, 5:9] += torch.linspace(1, 3, 4).view(1, 4, 1)
    assert not torch.allclose(norm(a)[:, -1], norm(b)[:, -1])


@pytest.mark.parametrize("switch", ["adaptive_norm", "gat"])
def test_a_switched_off_component_gets_no_gradient_and_does_not_change_the_output(switch: str) -> None:
    m = model()
    x, ei, ea = inputs()
    m.set_components(adaptive_norm=switch != "adaptive_norm", gat=switch != "gat")
    before = m(x, ei, ea)["point"][1]
    with torch.no_grad():
        for p in components(m)[switch]:
            p.add_(torch.randn_like(p))
    torch.testing.assert_close(m(x, ei, ea)["point"][1], before)
    m.train()
    sum(v.sum() for v in m(x, ei, ea)["point"].values()).backward()
    assert all(p.grad is None for p in components(m)[switch])
    other = "gat" if switch == "adaptive_norm" else "adaptive_norm"
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in components(m)[other])


@pytest.mark.parametrize("switch", ["adaptive_norm", "gat"])
def test_a_switched_on_component_gets_gradients_and_changes_the_output(switch: str) -> None:
    m = model()
    x, ei, ea = inputs()
    m.set_components(adaptive_norm=switch == "adaptive_norm", gat=switch == "gat")
    before = m(x, ei, ea)["point"][1]
    m.train()
    sum(v.sum() for v in m(x, ei, ea)["point"].values()).backward()
    params = components(m)[switch]
    with_grad = [p for p in params if p.grad is not None and p.grad.abs().sum() > 0]
    assert len(with_grad) >= 0.8 * len(params), (len(with_grad), len(params))
    m.eval()
    with torch.no_grad():
        for p in params:
            p.add_(0.5 * torch.randn_like(p))
    assert not torch.allclose(m(x, ei, ea)["point"][1], before)


def test_the_gat_reads_the_days_edges() -> None:
    m = model()
    x, ei, ea = inputs()
    with_edges = m(x, ei, ea)["point"][5]
    no_edges = m(x, ei[:, :0], ea[:0])["point"][5]
    assert not torch.allclose(with_edges, no_edges)
    m.set_components(adaptive_norm=True, gat=False)
    torch.testing.assert_close(m(x, ei, ea)["point"][5], m(x, ei[:, :0], ea[:0])["point"][5])


def test_bad_configs() -> None:
    with pytest.raises(InputError, match="divisible"):
        ATFTGATFAN(ATFTConfig(n_features=4, hidden=10, attention_heads=4))
    with pytest.raises(InputError, match="architecture"):
        ATFTConfig.from_mapping({"hidden": 8}, n_features=3, layers=2)
    with pytest.raises(ValueError, match="expected input"):
        model()(torch.zeros(3, TINY.seq_len, 5))
