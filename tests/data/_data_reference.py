"""Independent, slow references for the data tests, written from docs/method.md §1 alone.

Nothing here imports fastrecur: indices are the literal layout of docs/method.md §1.5, and graphs are
parsed token by token in plain Python and checked with networkx.
"""

from __future__ import annotations

import random

import networkx as nx

# docs/method.md §1.5 index layout.
S_VAR, S_OP, S_VAL, S_PAD, S_UNK, S_EQ, S_SEP = range(7)
OPS = {"ADD": lambda a, b: a + b, "SUB": lambda a, b: a - b, "MUL": lambda a, b: a * b}


class Equation:
    def __init__(self, rhs_pos, rhs_name, rhs_value, const, operands, op_names):
        self.rhs_pos = rhs_pos
        self.rhs_name = rhs_name
        self.rhs_value = rhs_value
        self.const = const  # leaf constant, else None
        self.operands = operands  # [(name, position)]
        self.op_names = op_names


def parse_sample(labels, info, num_vars, ops, p):
    """Parse and fully check one solved sample (lists of index rows); return its equations in order.

    Asserts the serialization of docs/method.md §1.4, the label values of §1.6 and the layout of
    ``dataset_info``; values are checked against the left fold with Python modulo.
    """
    labels = [list(map(int, r)) for r in labels]
    info = [list(map(int, r)) for r in info]
    L, C = len(labels), len(info[0])
    pad = [S_PAD, num_vars, len(ops), p, 0, 0]
    length = next((i for i, r in enumerate(labels) if r[0] == S_PAD), L)
    assert all(r == pad for r in labels[length:]), "padding must be the pad token to the end"
    assert all(r == [-1] * C for r in info[length:])
    pieces, current = [], []
    for i in range(length):
        if labels[i][0] == S_SEP:
            assert labels[i] == [S_SEP, num_vars, len(ops), p, 0, 0]
            pieces.append(current)
            current = []
        else:
            current.append(i)
    pieces.append(current)
    defined = {}  # name -> (position, value)
    equations = []
    for eq in pieces:
        assert len(eq) >= 3 and len(eq) % 2 == 1, f"equation length {len(eq)}"
        rhs, eqsign, lhs = eq[-1], eq[-2], eq[:-2]
        syn, name, op, value, reg, mod = labels[rhs]
        assert syn == S_VAR and op == len(ops) and reg == mod == 0 and 0 <= value < p
        assert labels[eqsign] == [S_EQ, num_vars, len(ops), p, 0, 0]
        assert name not in defined, "a name is defined twice"
        expected_info = [None]
        if len(lhs) == 1 and labels[lhs[0]][0] == S_VAL:
            const = labels[lhs[0]][3]
            assert labels[lhs[0]] == [S_VAL, num_vars, len(ops), const, 0, 0] and 0 <= const < p
            assert const == value, "a leaf holds its constant"
            operands, op_names = [], []
            expected_info.append(rhs - 2)
        else:
            const = None
            operands, op_names = [], []
            for j, pos in enumerate(lhs):
                s, v, o, val, r, m = labels[pos]
                if j % 2 == 0:
                    assert s == S_VAR and o == len(ops) and val == p + 1 and r == m == 0, "operands hold EMPTY"
                    assert v in defined, "operands are defined before use"
                    operands.append((v, defined[v][0]))
                    expected_info.append(defined[v][0])
                else:
                    assert s == S_OP and v == num_vars and val == p and 0 <= o < len(ops)
                    op_names.append(ops[o])
                    expected_info.append(o)
            fold = defined[operands[0][0]][1]
            for op_name, (operand, _) in zip(op_names, operands[1:]):
                fold = OPS[op_name](fold, defined[operand][1]) % p
            assert fold == value, f"value {value} != fold {fold}"
        defined[name] = (rhs, value)
        expected_info += [-1] * (C - len(expected_info))
        assert info[rhs][1:] == expected_info[1:], f"info at {rhs}: {info[rhs]} vs {expected_info}"
        equations.append(Equation(rhs, name, value, const, operands, op_names))
    rhs_positions = {e.rhs_pos for e in equations}
    assert all(info[i] == [-1] * C for i in range(length) if i not in rhs_positions)
    return equations


def build_graph(equations, creation_order=None):
    """networkx DiGraph of the equations: nodes added in ``creation_order`` (default: sequence order)."""
    graph = nx.DiGraph()
    parents = {e.rhs_name: [name for name, _ in e.operands] for e in equations}
    order = creation_order if creation_order is not None else [e.rhs_name for e in equations]
    graph.add_nodes_from(order)
    for child in order:  # children are created in creation order, so each parent's edges are too
        for parent in parents[child]:
            graph.add_edge(parent, child)
    return graph


def longest_path_depths(graph):
    depth = {}
    for node in nx.topological_sort(graph):
        depth[node] = max((depth[u] + 1 for u in graph.predecessors(node)), default=0)
    return depth


def reference_graph(rng: random.Random, n, leaves, fan_in, max_depth):
    """Structure of one graph drawn step by step as docs/method.md §1.1 describes (values are irrelevant to it):
    returns (per-node depths, sequence length)."""
    order = list(range(n))
    rng.shuffle(order)
    depth, fan = {}, {}
    for t, v in enumerate(order):
        if t < leaves:
            depth[v], fan[v] = 0, 0
            continue
        cand = [u for u in order[:t] if depth[u] < max_depth]
        k = rng.randint(min(fan_in[0], len(cand)), min(fan_in[1], len(cand)))
        chosen = rng.sample(cand, k)
        depth[v], fan[v] = 1 + max(depth[u] for u in chosen), k
    length = sum(2 * max(fan[v], 1) + 1 for v in order) + n - 1
    return depth, length
