"""policy.training.distill: the paper's slicing + distillation pairs, PCA and alignment losses."""
from __future__ import annotations

import pytest
import torch

from policy.model.config import get_preset
from policy.training.distill import (PAPER_HIDDEN, PAPER_MOTION, Distiller, DistillPlan, distill_weight,
                                     fit_pca, frame_motion, slice_plan_for)


def test_scaled_plan_is_the_papers_at_paper_depth_and_stays_in_range():
    paper = DistillPlan.scaled(12, 30)
    assert paper.hidden == PAPER_HIDDEN and paper.motion == PAPER_MOTION
    small = DistillPlan.scaled(4, 6)
    assert all(1 <= s <= 4 and 1 <= t <= 6 for s, t in small.hidden + small.motion)
    assert small.hidden[-1] == (4, 6) and small.student_layers[-1] == 4


def test_weight_falls_from_point_two_to_zero_over_thirds():
    assert [distill_weight(s, 300) for s in (0, 99, 100, 199, 200, 299)] == [0.2, 0.2, 0.1, 0.1, 0.0, 0.0]


def test_slice_plan_needs_a_common_head_dim_and_a_larger_teacher():
    student = get_preset("sim-tiny").replace(video_layers=4, video_width=128, num_heads=4, head_dim=32,
                                             video_ffn=512)
    teacher = student.replace(video_layers=6, video_width=256, num_heads=8, video_ffn=1024)
    plan = slice_plan_for(student, teacher)
    assert plan.layers == (1, 3, 4, 6) and len(plan.heads) == 4 and len(plan.ffn) == 512
    with pytest.raises(ValueError, match="head_dim"):
        slice_plan_for(student, teacher.replace(head_dim=64, video_width=512))
    with pytest.raises(ValueError, match="exceeds"):
        slice_plan_for(teacher, student)


def test_pca_keeps_the_directions_that_vary():
    g = torch.Generator().manual_seed(0)
    states = torch.randn(500, 2, generator=g) @ torch.tensor([[3.0, 0.0], [0.0, 0.1]]) + 5.0
    states = torch.cat([states, torch.zeros(500, 2)], 1)
    mean, comp = fit_pca(states, 1)
    assert comp.shape == (4, 1) and abs(abs(float(comp[0, 0])) - 1) < 1e-3
    assert torch.allclose(mean[:2], torch.tensor([5.0, 5.0]), atol=0.3)
    with pytest.raises(ValueError, match="samples"):
        fit_pca(states[:3], 4)


def test_alignment_losses_fall_as_the_student_projection_learns():
    torch.manual_seed(0)
    plan = DistillPlan(hidden=((1, 2),), motion=((1, 2),), proj_dim=8)
    frames, tokens = 2, 6
    teacher = {2: torch.randn(64, frames * tokens, 16)}
    mix = torch.randn(16, 12)
    student = {1: (teacher[2] @ mix).detach()}             # the same information, other coordinates
    assert frame_motion(teacher[2], frames).shape == (64, 1, 16)
    d = Distiller(plan, student_dim=12, teacher_dim=16)
    d.fit([teacher], frames)
    first = [float(x.detach()) for x in d.losses(student, teacher, frames)]
    opt = torch.optim.Adam(d.parameters(), lr=1e-2)
    for _ in range(150):
        hidden, motion = d.losses(student, teacher, frames)
        opt.zero_grad(), (hidden + motion).backward(), opt.step()
    assert float(hidden.detach()) < 0.5 * first[0] and float(motion.detach()) < 0.5 * first[1]
