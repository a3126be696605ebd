"""The graph generator against docs/method.md §1.1–1.4, checked by independent parsing and networkx."""

from __future__ import annotations

import random
from collections import Counter

import networkx as nx
import pytest
import torch
from _data_reference import build_graph, longest_path_depths, parse_sample, reference_graph
from _stats import binomial_bounds, chi2_statistic, chi2_upper_quantile

from fastrecur.data import BLOCK_SIZE, DagConfig, GraphStream, generate_dataset, graph_batch, required_length


def config(**kw) -> DagConfig:
    """A DagConfig whose max_length is exactly the longest possible sequence (the tightest valid value)."""
    kw.setdefault("max_length", required_length(kw["num_nodes"], kw.get("num_leaf_nodes", 6), kw.get("max_fan_in", 3)))
    return DagConfig(**kw)


CASES = {
    "authors-train": dict(num_nodes=32, max_depth=6, max_length=256),
    "sub-small-pool": dict(num_nodes=16, num_leaf_nodes=3, func_vocab=("SUB",), mod_val=7, num_vars=16, max_depth=16),
    "mul-fan-2-4": dict(
        num_nodes=24, num_leaf_nodes=2, min_fan_in=2, max_fan_in=4, func_vocab=("MUL", "ADD", "SUB"), mod_val=11,
        num_vars=40, max_depth=3,
    ),
    "one-leaf-depth-2": dict(
        num_nodes=12, num_leaf_nodes=1, max_fan_in=2, max_depth=2, func_vocab=("SUB", "MUL"), mod_val=2, num_vars=12
    ),
    "ood-128": dict(num_nodes=128, max_depth=128, func_vocab=("ADD", "SUB", "MUL"), max_length=1024),
}
SEEDS = [0, 7, 20250]


def parsed(cfg: DagConfig, count: int, seed: int):
    ds = generate_dataset(cfg, count, seed)
    samples = [
        parse_sample(ds.labels[i].tolist(), ds.info[i].tolist(), cfg.num_vars, cfg.func_vocab, cfg.mod_val)
        for i in range(count)
    ]
    return ds, samples


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("case", CASES)
def test_samples_follow_the_spec(case, seed):
    cfg = config(**CASES[case])
    count = 8 if cfg.num_nodes > 64 else 32
    ds, samples = parsed(cfg, count, seed)
    assert ds.labels.shape == (count, cfg.max_length, 6)
    assert ds.info.shape == (count, cfg.max_length, 2 * cfg.max_fan_in)
    for i, equations in enumerate(samples):
        assert len(equations) == cfg.num_nodes
        assert sum(e.const is not None for e in equations) == cfg.num_leaf_nodes
        fan_ins = [len(e.operands) for e in equations if e.const is None]
        assert min(fan_ins) >= min(cfg.min_fan_in, cfg.num_leaf_nodes) and max(fan_ins) <= cfg.max_fan_in
        graph = build_graph(equations)
        depth = longest_path_depths(graph)
        info_depth = ds.info[i, :, 0]
        assert [int(info_depth[e.rhs_pos]) for e in equations] == [depth[e.rhs_name] for e in equations]
        sequence_depths = [depth[e.rhs_name] for e in equations]
        assert sequence_depths == sorted(sequence_depths), "equations are depth-sorted"
        assert max(sequence_depths) <= cfg.max_depth
        assert int(ds.lengths[i]) == equations[-1].rhs_pos + 1 <= cfg.max_length


def assert_tie_rule(equations) -> None:
    """docs/method.md §1.2 without knowing creation order: within a depth level, the rank of each node's
    latest-emitted parent never decreases."""
    rank = {e.rhs_name: r for r, e in enumerate(equations)}
    depth = longest_path_depths(build_graph(equations))
    keys = [(depth[e.rhs_name], max((rank[name] for name, _ in e.operands), default=-1)) for e in equations]
    assert keys == sorted(keys), "by depth, then by the position of the latest parent"


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("case", CASES)
def test_order_is_networkx_topological_sort(case, seed):
    # Unshuffled names are creation indices, so networkx can be given the creation order.
    cfg = config(**CASES[case], shuffle_node_names=False)
    _, samples = parsed(cfg, 8 if cfg.num_nodes > 64 else 24, seed)
    for equations in samples:
        names = [e.rhs_name for e in equations]
        graph = build_graph(equations, creation_order=sorted(names))
        assert list(nx.topological_sort(graph)) == names
        assert_tie_rule(equations)


def test_shuffled_names_only_rename():
    shuffled = generate_dataset(config(**CASES["mul-fan-2-4"]), 64, seed=3)
    plain = generate_dataset(config(**CASES["mul-fan-2-4"], shuffle_node_names=False), 64, seed=3)
    other = [0, 2, 3, 4, 5]  # every factor but VARIABLE
    assert torch.equal(shuffled.labels[..., other], plain.labels[..., other])
    assert torch.equal(shuffled.info, plain.info)
    is_var = plain.labels[..., 0] == 0
    for i in range(64):
        pairs = set(zip(plain.labels[i, :, 1][is_var[i]].tolist(), shuffled.labels[i, :, 1][is_var[i]].tolist()))
        assert len({a for a, _ in pairs}) == len({b for _, b in pairs}) == len(pairs) == 24, "a bijection of names"
    assert int(shuffled.labels[..., 1][shuffled.labels[..., 0] == 0].max()) >= 24, "names come from the whole pool"


def test_fan_in_operations_leaves_and_operand_order_are_uniform():
    cfg = config(num_nodes=32, max_depth=32, func_vocab=("ADD", "SUB", "MUL"), num_vars=32, shuffle_node_names=False)
    _, samples = parsed(cfg, 256, seed=11)
    equations = [e for sample in samples for e in sample]
    fan_in = Counter(len(e.operands) for e in equations if e.const is None)  # ≥ 6 candidates: uniform on 1..3
    ops = Counter(op for e in equations for op in e.op_names)
    leaves = Counter(e.const for e in equations if e.const is not None)
    for observed, cells in ((fan_in, [1, 2, 3]), (ops, ["ADD", "SUB", "MUL"]), (leaves, list(range(23)))):
        stat, df = chi2_statistic([observed[c] for c in cells], [1 / len(cells)] * len(cells))
        assert stat < chi2_upper_quantile(df), (observed, stat)
    # Operands are in random order, not creation order: the first of two is the older one half the time.
    pairs = [e.operands[0][0] < e.operands[1][0] for e in equations if len(e.operands) == 2]
    low, high = binomial_bounds(len(pairs), 0.5)
    assert low <= sum(pairs) <= high


def _homogeneity(a: Counter, b: Counter) -> tuple[float, int]:
    """Two-sample chi-square statistic on the union of cells (cells with < 5 expected pooled)."""
    cells = sorted(set(a) | set(b))
    na, nb = sum(a.values()), sum(b.values())
    stat, used, pool_a, pool_b = 0.0, 0, 0, 0
    for c in cells:
        total = a[c] + b[c]
        if total * min(na, nb) / (na + nb) < 5:
            pool_a, pool_b = pool_a + a[c], pool_b + b[c]
            continue
        ea, eb = total * na / (na + nb), total * nb / (na + nb)
        stat += (a[c] - ea) ** 2 / ea + (b[c] - eb) ** 2 / eb
        used += 1
    return stat, max(used - 1, 1)


@pytest.mark.parametrize(
    "n,leaves,max_depth,seed", [(32, 6, 6, 1), (20, 3, 20, 2), (16, 1, 3, 3)]
)
def test_distribution_matches_a_step_by_step_reference(n, leaves, max_depth, seed):
    cfg = config(num_nodes=n, num_leaf_nodes=leaves, max_depth=max_depth, num_vars=max(n, 8))
    ours = generate_dataset(cfg, 1024, seed)
    rng = random.Random(seed)
    reference = [reference_graph(rng, n, leaves, (1, 3), max_depth) for _ in range(1024)]
    depth_ours = Counter(ours.depth[ours.depth >= 0].tolist())
    depth_ref = Counter(d for depths, _ in reference for d in depths.values())
    stat, df = _homogeneity(depth_ours, depth_ref)
    assert stat < chi2_upper_quantile(df), (depth_ours, depth_ref)
    graph_ours = Counter(ours.depth.max(dim=1).values.tolist())
    graph_ref = Counter(max(depths.values()) for depths, _ in reference)
    stat, df = _homogeneity(graph_ours, graph_ref)
    assert stat < chi2_upper_quantile(df), (graph_ours, graph_ref)
    lengths_ref = torch.tensor([length for _, length in reference], dtype=torch.float64)
    se = (ours.lengths.double().var() / 1024 + lengths_ref.var() / 1024).sqrt()
    assert abs(ours.lengths.double().mean() - lengths_ref.mean()) < 4.5 * se


def test_matches_the_authors_measured_statistics():
    # docs/method.md §1.8, measured with the authors' generator: train depth mean 5.53, length mean 179;
    # n = 128 unbounded depth: depth mean 11.7, length mean 757.
    train = generate_dataset(config(num_nodes=32, max_depth=6, max_length=256), 2048, seed=5)
    assert abs(train.depth.max(dim=1).values.double().mean() - 5.53) < 0.1
    assert abs(train.lengths.double().mean() - 179) < 2
    ood = generate_dataset(config(num_nodes=128, max_depth=128, max_length=1024), 512, seed=5)
    assert abs(ood.depth.max(dim=1).values.double().mean() - 11.7) < 0.4
    assert abs(ood.lengths.double().mean() - 757) < 6


def test_required_length_is_reached_by_full_fan_in():
    cfg = config(num_nodes=20, min_fan_in=3, max_fan_in=3, max_depth=20, num_vars=20)
    ds = generate_dataset(cfg, 16, seed=0)
    assert ds.lengths.tolist() == [cfg.max_length] * 16


@pytest.mark.parametrize("seed", SEEDS)
def test_seeded_and_splittable(seed):
    cfg = config(**CASES["one-leaf-depth-2"])
    whole = generate_dataset(cfg, 700, seed)
    again = generate_dataset(cfg, 700, seed)
    assert torch.equal(whole.labels, again.labels) and torch.equal(whole.info, again.info)
    assert not torch.equal(whole.labels, generate_dataset(cfg, 700, seed + 1).labels)
    assert torch.equal(generate_dataset(cfg, 700, seed, workers=2).labels, whole.labels)
    assert torch.equal(generate_dataset(cfg, 300, seed).labels, whole.labels[:300]), "a prefix of the stream"
    cuts = [0, 1, 255, 256, 513, 700]
    parts = [graph_batch(cfg, seed, a, b - a) for a, b in zip(cuts, cuts[1:])]
    assert torch.equal(torch.cat([p.labels for p in parts]), whole.labels)
    assert torch.equal(torch.cat([p.info for p in parts]), whole.info)
    assert len(graph_batch(cfg, seed, 5, 0)) == 0


def test_stream_ranks_partition_global_batches_and_resume():
    cfg = config(**CASES["sub-small-pool"])
    batch, steps = 96, 7  # 96 · 7 graphs span three blocks
    whole = graph_batch(cfg, 9, 0, batch * steps)
    ranks = [GraphStream(cfg, 9, batch, rank=r, world_size=4) for r in range(4)]
    for step in range(steps):
        shares = [next(stream).labels for stream in ranks]
        assert torch.equal(torch.cat(shares), whole.labels[step * batch : (step + 1) * batch])
    resumed = GraphStream(cfg, 9, batch, start_step=5)
    assert torch.equal(next(resumed).labels, whole.labels[5 * batch : 6 * batch]) and resumed.step == 6
    assert BLOCK_SIZE * 2 < batch * steps
