"""Per-iteration training metrics (docs/method.md §4.6), accumulated on the device.

``update`` only launches device ops (no ``.item()``), so a training step never waits for the GPU
because of logging; ``summary`` moves everything to the host once per logging interval.

Metrics, per iteration ``k`` (input ``S_k``, target ``S_{k+1}``) and factor ``f``:

* ``acc/<factor>/k<k>`` — per-token accuracy of the decoded factor (counted tokens only);
* ``seq_acc/<factor>/k<k>`` — fraction of sequences whose factor is right at every counted token;
* ``value_new/k<k>`` — VALUE accuracy on RHS slots of depth ``== k`` (the nodes this iteration solves);
* ``value_solved/k<k>`` — VALUE accuracy on RHS slots of depth ``≤ k``;
* ``recorrected`` — VALUE accuracy on corrupted slots (steps with corruption only);
* ``loss``, ``loss/<factor>`` — means over the interval.

With final-state supervision (``final_state=True``, docs/method.md §10.2) only the last iteration is
read: ``acc/<factor>/final``, ``seq_acc/<factor>/final`` and ``value/final`` (all node values).
``NextTokenMetrics`` serves the chain-of-thought baseline.
"""

from __future__ import annotations

from typing import Optional

import torch

from .data.vocab import FACTORS, SCORED_FACTORS, VALUE

FACTOR_NAMES = tuple(name.lower() for name in FACTORS)  # as they appear in metric names


class TrainMetrics:
    def __init__(self, max_iters: int, device: torch.device, final_state: bool = False):
        self.max_iters = 1 if final_state else max_iters
        self.final_state = final_state
        self.device = device
        self.reset()

    def reset(self) -> None:
        z = lambda *shape: torch.zeros(shape, dtype=torch.float64, device=self.device)  # noqa: E731
        K, F = self.max_iters, len(FACTORS)
        self.steps = 0
        self.loss = z()
        self.loss_per_factor = z(F)
        self.token_correct, self.token_count = z(K, F), z(K)
        self.seq_correct, self.seq_count = z(K, F), z(K)
        self.new_correct, self.new_count = z(K), z(K)
        self.solved_correct, self.solved_count = z(K), z(K)
        self.recorrected_correct, self.recorrected_count = z(), z()

    @torch.no_grad()
    def update(
        self,
        loss: torch.Tensor,
        per_factor: torch.Tensor,
        correct: torch.Tensor,  # bool [K, B, L, 6]
        token_mask: Optional[torch.Tensor],  # bool [B, L] (counted tokens) or None (all)
        depth: torch.Tensor,  # [B, L], −1 off RHS
        corrupted: Optional[torch.Tensor],  # bool [K, B, L] or None
    ) -> None:
        K = correct.shape[0]
        if K > self.max_iters:
            raise ValueError(f"batch needs {K} iterations, metrics were sized for {self.max_iters}")
        self.steps += 1
        self.loss += loss.detach().double()
        self.loss_per_factor += per_factor.double()
        mask = torch.ones_like(depth, dtype=torch.bool) if token_mask is None else token_mask
        m = mask.unsqueeze(0).unsqueeze(-1)  # [1, B, L, 1]
        self.token_correct[:K] += (correct & m).sum(dim=(1, 2)).double()
        self.token_count[:K] += mask.sum().double()
        self.seq_correct[:K] += (correct | ~m).all(dim=2).sum(dim=1).double()
        self.seq_count[:K] += depth.shape[0]

        value_ok = correct[..., VALUE]  # [K, B, L]
        if self.final_state:  # the one supervised state is the solved one: every node counts as "new"
            depth = torch.where(depth >= 0, 0, -1)
        k = torch.arange(K, device=depth.device).view(-1, 1, 1)
        new = (depth.unsqueeze(0) == k) & (depth.unsqueeze(0) >= 0)
        solved = (depth.unsqueeze(0) <= k) & (depth.unsqueeze(0) >= 0)
        self.new_correct[:K] += (value_ok & new).sum(dim=(1, 2)).double()
        self.new_count[:K] += new.sum(dim=(1, 2)).double()
        self.solved_correct[:K] += (value_ok & solved).sum(dim=(1, 2)).double()
        self.solved_count[:K] += solved.sum(dim=(1, 2)).double()
        if corrupted is not None:
            self.recorrected_correct += (value_ok & corrupted).sum().double()
            self.recorrected_count += corrupted.sum().double()

    def summary(self) -> dict[str, float]:
        """Means over the interval as plain floats (one host transfer), then reset."""
        if self.steps == 0:
            return {}
        host = {
            name: t.cpu()
            for name, t in vars(self).items()
            if isinstance(t, torch.Tensor)
        }
        out = {"loss": host["loss"].item() / self.steps}
        for f, name in enumerate(FACTOR_NAMES):
            out[f"loss/{name}"] = host["loss_per_factor"][f].item() / self.steps

        def ratio(num, den):
            return num / den if den > 0 else float("nan")

        for k in range(self.max_iters):
            if host["token_count"][k] == 0:
                continue
            level = "final" if self.final_state else f"k{k}"
            for f in SCORED_FACTORS:
                name = FACTOR_NAMES[f]
                out[f"acc/{name}/{level}"] = ratio(host["token_correct"][k, f].item(), host["token_count"][k].item())
                out[f"seq_acc/{name}/{level}"] = ratio(host["seq_correct"][k, f].item(), host["seq_count"][k].item())
            if self.final_state:
                out["value/final"] = ratio(host["new_correct"][k].item(), host["new_count"][k].item())
                continue
            out[f"value_new/k{k}"] = ratio(host["new_correct"][k].item(), host["new_count"][k].item())
            out[f"value_solved/k{k}"] = ratio(host["solved_correct"][k].item(), host["solved_count"][k].item())
        if host["recorrected_count"].item() > 0:
            out["recorrected"] = host["recorrected_correct"].item() / host["recorrected_count"].item()
        self.reset()
        return out


class NextTokenMetrics:
    """Teacher-forced metrics of the CoT baseline, on the tokens the loss counts: ``loss``,
    ``acc/token`` (next-token accuracy) and ``seq_acc`` (sequences right at every counted token)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.reset()

    def reset(self) -> None:
        z = lambda: torch.zeros((), dtype=torch.float64, device=self.device)  # noqa: E731
        self.steps = 0
        self.loss, self.correct, self.count, self.seq_correct, self.seq_count = z(), z(), z(), z(), z()

    @torch.no_grad()
    def update(self, loss: torch.Tensor, correct: torch.Tensor, mask: torch.Tensor) -> None:
        """``correct``, ``mask``: bool ``[B, L]`` (next token right; the token counts)."""
        self.steps += 1
        self.loss += loss.detach().double()
        self.correct += (correct & mask).sum().double()
        self.count += mask.sum().double()
        self.seq_correct += (correct | ~mask).all(dim=1).sum().double()
        self.seq_count += correct.shape[0]

    def summary(self) -> dict[str, float]:
        if self.steps == 0:
            return {}
        loss, correct, count, seq_correct, seq_count = torch.stack(
            [self.loss, self.correct, self.count, self.seq_correct, self.seq_count]
        ).tolist()
        out = {"loss": loss / self.steps, "acc/token": correct / max(count, 1.0), "seq_acc": seq_correct / max(seq_count, 1.0)}
        self.reset()
        return out
