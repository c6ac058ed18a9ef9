"""Guidance distillation: one network that takes the CFG weight ``w`` as an input.

Classifier-free guidance costs two network calls per sampling step, ``eps(x_t, y)`` and
``eps(x_t, null)``. Meng et al. (CVPR 2023, "On distillation of guided diffusion models",
stage one) train a student ``eps_s(x_t, t, y, w)`` to regress the teacher's guided prediction

    eps_s(x_t, t, y, w)  ~  (1 + w) eps(x_t, t, y) - w eps(x_t, t, null),    w ~ U[w_min, w_max],

on noised data ``x_t``. Sampling then takes one call per step at any ``w`` in the range.
Flux-dev ships such a model: its ``guidance_scale`` is an input of the network, not a
combination of two calls (its ``true_cfg_scale`` runs real CFG with a negative prompt).

:class:`GuidanceUNet` is :class:`~course_lib.unet.ConditionalUNet` with ``w`` embedded (the
sinusoidal embedding of :func:`~course_lib.models.timestep_embedding`, then a small MLP whose
last layer starts at zero) and added to the time and label embeddings, so a student built by
:func:`from_teacher` starts as the teacher's conditional prediction at every ``w``.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from .conditional import grid_labels, grid_noise
from .diffusion import EpsFn, Schedule, q_sample, sample
from .sample_metrics import judged_accuracy, within_class_diversity
from . import validate
from .guidance import model_cfg_eps_fn
from .models import timestep_embedding
from .training import TrainHistory, adam, cosine_lr
from .unet import ConditionalUNet, _check_images, _check_index


class GuidanceUNet(ConditionalUNet):
    """``eps(x_t, t, y, w)``: a conditional U-Net that takes the CFG weight ``w`` as an input
    (Meng et al. 2023). ``w`` is meaningful in ``[0, w_max]``, the range it was distilled on.

    ``forward(x [B, 1, 28, 28], t [B] long, y [B] long, w [B] float or a number) -> eps``."""

    def __init__(self, num_classes: int = 10, T: int = 1000, base_channels: int = 32, emb_dim: int = 64,
                 w_max: float = 4.0) -> None:
        super().__init__(num_classes, T, base_channels, emb_dim)
        self.w_max = validate.number(w_max, "w_max", above=0)
        self.w_mlp = nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        nn.init.zeros_(self.w_mlp[2].weight)
        nn.init.zeros_(self.w_mlp[2].bias)

    def _w(self, w: Tensor | float, batch: int, device: torch.device) -> Tensor:
        if isinstance(w, (int, float)):
            w = torch.full((batch,), validate.number(w, "w"), device=device)
        if not isinstance(w, Tensor) or not w.is_floating_point() or tuple(w.shape) != (batch,):
            raise ValueError(f"w must be a number or a float tensor of shape [{batch}]")
        if not torch.isfinite(w).all():
            raise ValueError("w must be finite")
        return w

    def forward(self, x: Tensor, t: Tensor, y: Tensor, w: Tensor | float) -> Tensor:  # type: ignore[override]
        """``x [B, 1, 28, 28]``, ``t [B]`` long in ``0..T-1``, ``y [B]`` long in ``0..num_classes``
        (``num_classes`` is the null label), ``w [B]`` float or one number for all (meaningful in
        ``[0, w_max]``) -> ``eps [B, 1, 28, 28]``."""
        _check_images(x)
        _check_index("t", t, x.shape[0], self.T - 1)
        _check_index("y", y, x.shape[0], self.num_classes)
        w = self._w(w, x.shape[0], x.device)
        emb = self.time_mlp(timestep_embedding(t, self.emb_dim, self.T)) + self.label_emb(y)
        emb = F.silu(emb + self.w_mlp(timestep_embedding(w, self.emb_dim, self.w_max)))
        h14, h7 = self.encoder(x, emb)
        h = self.block_up(torch.cat([self.up(h7), h14], dim=1), emb)
        return F.pixel_shuffle(self.out(h), 2)


def from_teacher(teacher: ConditionalUNet, w_max: float = 4.0) -> GuidanceUNet:
    """A :class:`GuidanceUNet` of the teacher's size holding the teacher's weights (every tensor
    but the new ``w`` embedding, whose output starts at zero): at first it predicts
    ``eps(x_t, t, y)`` whatever ``w`` is."""
    if not isinstance(teacher, ConditionalUNet) or isinstance(teacher, GuidanceUNet):
        raise ValueError("teacher must be a course_lib.unet.ConditionalUNet (a CFG model)")
    base = teacher.encoder.stem.out_channels
    student = GuidanceUNet(teacher.num_classes, teacher.T, base, teacher.emb_dim, w_max)
    missing, unexpected = student.load_state_dict(teacher.state_dict(), strict=False)
    if unexpected or any(not k.startswith("w_mlp.") for k in missing):
        raise ValueError(f"teacher does not fit the student: missing {missing}, unexpected {unexpected}")
    return student.to(next(teacher.parameters()).device)


def distilled_eps_fn(model: GuidanceUNet, y: Tensor | int, w: float) -> EpsFn:
    """``eps_fn`` of the distilled model at labels ``y`` and weight ``w``: one network call per step.

    Args:
        y: an int or a long tensor ``[B]`` of labels in ``0..K-1`` (``B``: the sampler's batch).
        w: the guidance weight, a float in ``0..model.w_max``."""
    w = validate.number(w, "w", minimum=0, maximum=model.w_max, hint=" (the distilled range)")

    def eps_fn(x: Tensor, t: Tensor) -> Tensor:
        labels = validate.labels(y, x.shape[0], model.num_classes).to(x.device)
        return model(x, t, labels, w)

    return eps_fn


def distill(student: GuidanceUNet, teacher: ConditionalUNet, x0: Tensor, y: Tensor, schedule: Schedule, *,
            steps: int = 2000, batch_size: int = 128, lr: float = 5e-4, w_min: float = 0.0,
            w_max: float | None = None, ema_decay: float | None = 0.995,
            generator: torch.Generator | None = None, progress: bool = True,
            desc: str = "distilling") -> TrainHistory:
    """Train ``student`` in place to regress the teacher's CFG prediction (Meng et al. 2023,
    stage one): per example ``x_t = q_sample(x0, t, noise)``, ``t`` uniform, ``w ~ U[w_min, w_max]``
    (default ``student.w_max``), loss ``|| eps_s(x_t, t, y, w) - ((1 + w) eps(x_t, y) - w eps(x_t, null)) ||^2``.
    Adam at constant ``lr``, the EMA of the weights kept (``ema_decay``). Returns the loss history.

    Args:
        x0: ``[N, 1, 28, 28]`` training digits in ``[-1, 1]``.
        y: ``[N]`` long labels in ``0..K-1`` (``K = teacher.num_classes``)."""
    w_max = student.w_max if w_max is None else w_max
    if not (0.0 <= w_min < w_max <= student.w_max):
        raise ValueError(f"w_min and w_max must satisfy 0 <= w_min < w_max <= {student.w_max:g}, "
                         f"got {w_min!r}, {w_max!r}")
    validate.integer(steps, "steps", minimum=1)
    validate.integer(batch_size, "batch_size", minimum=1)
    lr = validate.number(lr, "lr", above=0)
    if teacher.T != schedule.T or student.T != schedule.T:
        raise ValueError(f"schedule has T={schedule.T} but the models were built for T={teacher.T}")
    y = validate.labels(y, x0.shape[0], teacher.num_classes)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    device = next(student.parameters()).device
    null = teacher.num_classes
    teacher = teacher.eval().requires_grad_(False)
    ema = copy.deepcopy(student).requires_grad_(False) if ema_decay else None
    params = list(student.parameters())
    optimizer = adam(params, lr)
    scheduler = cosine_lr(optimizer, steps, decay=False)
    history, start = TrainHistory(), time.perf_counter()
    student.train()
    bar = tqdm(range(steps), desc=desc, disable=not progress)
    for step in bar:
        idx = torch.randint(x0.shape[0], (batch_size,), generator=generator)
        t = torch.randint(schedule.T, (batch_size,), generator=generator)
        noise = torch.randn((batch_size, *x0.shape[1:]), generator=generator)
        w = w_min + (w_max - w_min) * torch.rand(batch_size, generator=generator)
        xb, yb, t, noise, w = (v.to(device) for v in (x0[idx], y[idx], t, noise, w))
        x_t = q_sample(xb, t, noise, schedule)
        with torch.no_grad():
            eps_c, eps_u = teacher(torch.cat([x_t, x_t]), torch.cat([t, t]),
                                   torch.cat([yb, torch.full_like(yb, null)])).chunk(2)
            wb = w.view(-1, *([1] * (x_t.ndim - 1)))
            target = (1 + wb) * eps_c - wb * eps_u
        loss = F.mse_loss(student(x_t, t, yb, w), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if ema is not None:
            weight = 1 - min(ema_decay, (1 + step) / (10 + step))
            with torch.no_grad():
                for e, p in zip(ema.parameters(), params):
                    e.lerp_(p, weight)
        history.losses.append(loss.item())
        if step % 50 == 0 or step == steps - 1:
            bar.set_postfix(loss=f"{sum(history.losses[-50:]) / len(history.losses[-50:]):.4f}")
    if ema is not None:
        student.load_state_dict(ema.state_dict())
    student.eval()
    history.seconds = time.perf_counter() - start
    return history


@dataclass(frozen=True)
class DistillRecipe:
    """The ``mnist_cfg_distilled`` recipe: the student starts from the teacher (:func:`from_teacher`)
    and regresses its CFG prediction at ``w ~ U[w_min, w_max]`` for ``steps`` batches.
    :meth:`quick` is the lessons' from-scratch version (a quarter of the steps)."""

    seed: int = 0
    steps: int = 2400
    batch_size: int = 128
    lr: float = 3e-4
    w_min: float = 0.0
    w_max: float = 4.0
    ema_decay: float = 0.995

    @classmethod
    def quick(cls, seed: int = 0) -> DistillRecipe:
        return cls(seed=seed, steps=600, ema_decay=0.99)


def train_distilled(teacher: ConditionalUNet, x0: Tensor, y: Tensor, schedule: Schedule,
                    recipe: DistillRecipe = DistillRecipe(), *,
                    progress: bool = True) -> tuple[GuidanceUNet, TrainHistory]:
    """Distil ``teacher`` into a :class:`GuidanceUNet` by ``recipe`` (seeded); returns it in eval mode.

    Args:
        x0: ``[N, 1, 28, 28]`` training digits in ``[-1, 1]``.
        y: ``[N]`` long labels in ``0..K-1``."""
    student = from_teacher(teacher, recipe.w_max)
    history = distill(student, teacher, x0, y, schedule, steps=recipe.steps, batch_size=recipe.batch_size,
                      lr=recipe.lr, w_min=recipe.w_min, w_max=recipe.w_max, ema_decay=recipe.ema_decay,
                      generator=torch.Generator().manual_seed(recipe.seed), progress=progress,
                      desc="mnist_cfg_distilled")
    return student, history


class CallCounter:
    """Counts the rows a network evaluates (a forward hook): ``rows / (samples * steps)`` is the
    number of network calls per sample and step (CFG: 2; a distilled model: 1)."""

    def __init__(self, model: nn.Module) -> None:
        self.rows = 0
        self._handle = model.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output) -> None:
        self.rows += int(inputs[0].shape[0])

    def close(self) -> None:
        self._handle.remove()


@torch.no_grad()
def compare_with_teacher(student: GuidanceUNet, teacher: ConditionalUNet, judge: nn.Module, schedule: Schedule,
                         *, ws: tuple[float, ...] = (0.0, 1.0, 3.0), per_class: int = 100, steps: int = 50,
                         seed: int = 1000) -> dict:
    """The student at weight ``w`` beside the teacher under CFG at the same ``w``: the same noise
    (``grid_noise(per_class, seed)``), the same sampler (deterministic DDIM, ``steps``), clamped to
    ``[-1, 1]``. Per ``w`` (keyed ``f"{w:g}"``), for each: the judged accuracy, its binomial
    standard error ``sqrt(a (1 - a) / n)``, the within-class diversity and the network calls per
    sample (over the whole run). Plain data, for a meta."""
    out = {"per_class": per_class, "ddim_steps": steps, "seed": seed, "by_w": {}}
    x_T, labels = grid_noise(per_class, seed=seed), grid_labels(per_class)
    n = labels.numel()
    for w in ws:
        row = {}
        for name, model, fn in (("teacher", teacher, model_cfg_eps_fn(teacher, labels, w, teacher.num_classes)),
                                ("student", student, distilled_eps_fn(student, labels, w))):
            counter = CallCounter(model)
            try:
                images = sample(fn, tuple(x_T.shape), schedule, steps=steps, eta=0.0, x_T=x_T).clamp(-1, 1)
            finally:
                counter.close()
            acc = judged_accuracy(judge, images, labels)
            row[name] = {"accuracy": round(acc, 4), "se": round(math.sqrt(acc * (1 - acc) / n), 4),
                         "diversity": round(within_class_diversity(images, labels), 4),
                         "calls_per_sample": counter.rows / n}
        out["by_w"][f"{w:g}"] = row
    return out
