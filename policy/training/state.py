"""Resumable training state without pickle: optimizer moments in safetensors, the rest in JSON.

  OUT/train_state.json        {"stage": "action", "step": 1200, "finished": ["codec", "video"], ...}
  OUT/optimizer.safetensors   "<param name>/<state key>" -> tensor, for the stage in progress
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

STATE_JSON, OPTIMIZER = "train_state.json", "optimizer.safetensors"


def save_optimizer(path: Path, optimizer: torch.optim.Optimizer, names: dict[torch.nn.Parameter, str]) -> None:
    tensors = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p not in names:            # training-only helpers (distillation projections) restart
                continue
            for key, value in optimizer.state.get(p, {}).items():
                v = value if isinstance(value, torch.Tensor) else torch.tensor(value)
                tensors[f"{names[p]}/{key}"] = v.detach().cpu().contiguous().clone()
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, path)


def load_optimizer(path: Path, optimizer: torch.optim.Optimizer, names: dict[torch.nn.Parameter, str]) -> None:
    tensors = load_file(str(path))
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p not in names:
                continue
            prefix = names[p] + "/"
            state = {k[len(prefix):]: v.to(p.device) for k, v in tensors.items() if k.startswith(prefix)}
            if state:
                optimizer.state[p] = state


def save_state(out: Path, state: dict) -> None:
    tmp = out / (STATE_JSON + ".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, out / STATE_JSON)


def load_state(out: Path) -> dict | None:
    p = out / STATE_JSON
    return json.loads(p.read_text()) if p.exists() else None
