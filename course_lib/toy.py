"""2-D Gaussian mixtures with exact answers, and scikit-learn shapes without them.

Each component is one class ``y`` unless ``labels`` maps several components to one class
(``p(x | y)`` is then the mixture of class ``y``'s components). For ``p(x) = sum_k pi_k N(x; mu_k, S_k)``:

- noising keeps the family: ``c x0 + s eps | y=k ~ N(c mu_k, c^2 S_k + s^2 I)`` (:func:`noised_gaussians`),
  DDPM's ``x_t`` being ``c^2 = alpha_bar_t``, ``s^2 = 1 - alpha_bar_t`` (Ho et al. 2020, eq. 4);
- ``grad log N(x; mu, S) = -S^{-1} (x - mu)``;
- the marginal score is the posterior-weighted sum of component scores;
- ``p(y=k | x) = softmax_k(log pi_k + log N(x; mu_k, S_k))`` (Bayes' rule), summed over a class's
  components when it has several.

All exact quantities are computed in float64. The diffusion oracles built on these (the exact
denoiser and noise-aware classifier under a schedule) are in :mod:`course_lib.oracles`.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from .diffusion import EpsFn, LogProbFn, Schedule
from . import oracles, validate

LOG_2PI = math.log(2 * math.pi)


def _gaussian_terms(x: torch.Tensor, means: torch.Tensor, covs: torch.Tensor):
    """Per-component ``log N(x; mu_k, S_k)`` ``[n, K]`` and ``S_k^{-1} (x - mu_k)``
    ``[n, K, 2]``; ``means`` ``[m, K, 2]``, ``covs`` ``[m, K, 2, 2]`` with ``m`` 1 or n.
    Closed-form 2x2 inverse and determinant."""
    d = x[:, None, :] - means
    a, b, c, e = covs[..., 0, 0], covs[..., 0, 1], covs[..., 1, 0], covs[..., 1, 1]
    det = a * e - b * c
    prec_d = torch.stack([e * d[..., 0] - b * d[..., 1], -c * d[..., 0] + a * d[..., 1]], dim=-1) / det[..., None]
    mahal = (d * prec_d).sum(-1)
    return -0.5 * (mahal + torch.log(det)) - LOG_2PI, prec_d  # d = 2: (d/2) log 2pi = log 2pi


def noised_gaussians(means: torch.Tensor, covs: torch.Tensor, signal_var: float | torch.Tensor,
                     noise_var: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The law of ``c x0 + s eps`` for ``x0 ~ N(mu_k, S_k)``, ``eps ~ N(0, I)``: ``N(c mu_k, c^2 S_k + s^2 I)``.
    Given as variances ``c^2``, ``s^2`` so that DDPM's ``c^2 = alpha_bar`` is exact (eq. 4); the
    rectified-flow path is ``c = 1 - tau``, ``s = tau``. The one noising routine of the package.

    Args:
        means: ``[K, 2]`` float64.
        covs: ``[K, 2, 2]`` float64.
        signal_var, noise_var: ``c^2`` and ``s^2``, floats (returns ``[K, 2]``, ``[K, 2, 2]``) or
            tensors ``[m]`` (returns ``[m, K, 2]``, ``[m, K, 2, 2]``: one law per entry)."""
    c2 = torch.as_tensor(signal_var, dtype=torch.float64, device=means.device)[..., None, None]
    s2 = torch.as_tensor(noise_var, dtype=torch.float64, device=means.device)[..., None, None]
    eye = torch.eye(2, dtype=torch.float64, device=means.device)
    return c2.sqrt() * means, c2[..., None] * covs + s2[..., None] * eye


class GaussianMixture2D:
    """A mixture of ``K`` 2-D Gaussians, component ``k`` being class ``y = labels[k]``.

    Args:
        means: ``[K, 2]`` component means.
        covs: ``[K, 2, 2]`` symmetric positive-definite covariances.
        weights: ``[K]`` positive component weights, normalised to sum to one.
        labels: ``[K]`` the class of each component, every class in ``0..C-1`` used at least once;
            default ``0..K-1`` (component ``k`` is class ``k``). Class-level answers (``posterior``,
            ``log_prob(x, y)``, ``score(x, y)``, ``eps_fn(schedule, y)``) sum over a class's components.
    """

    def __init__(self, means, covs, weights, labels=None) -> None:
        means = torch.as_tensor(means, dtype=torch.float64)
        covs = torch.as_tensor(covs, dtype=torch.float64)
        weights = torch.as_tensor(weights, dtype=torch.float64)
        if means.ndim != 2 or means.shape[1] != 2 or means.shape[0] < 1:
            raise ValueError(f"means must have shape [K, 2], got {tuple(means.shape)}")
        K = means.shape[0]
        if covs.shape != (K, 2, 2):
            raise ValueError(f"covs must have shape [K, 2, 2] = [{K}, 2, 2], got {tuple(covs.shape)}")
        if weights.shape != (K,):
            raise ValueError(f"weights must have shape [K] = [{K}], got {tuple(weights.shape)}")
        for name, v in (("means", means), ("covs", covs), ("weights", weights)):
            if not torch.isfinite(v).all():
                raise ValueError(f"{name} must be finite")
        if (weights <= 0).any():
            raise ValueError("weights must all be positive")
        if not torch.allclose(covs, covs.transpose(1, 2), atol=1e-10):
            raise ValueError("covs must be symmetric")
        if (torch.linalg.eigvalsh(covs) <= 0).any():
            raise ValueError("covs must be positive definite")
        self.means, self.covs, self.weights = means, covs, weights / weights.sum()
        self.labels = _check_component_labels(labels, K)
        self._one_per_class = bool((self.labels == torch.arange(K)).all())

    @property
    def num_classes(self) -> int:
        return int(self.labels.max()) + 1

    @property
    def num_components(self) -> int:
        return self.means.shape[0]

    def _classes(self, joint: torch.Tensor) -> torch.Tensor:
        """Per-class ``log sum_{k in class} exp(joint_k)``, ``[n, K] -> [n, C]``."""
        if self._one_per_class:
            return joint
        return torch.stack([torch.logsumexp(joint[:, self.labels == c], 1) for c in range(self.num_classes)], 1)

    def _responsibilities(self, joint: torch.Tensor, y: torch.Tensor | int | None) -> torch.Tensor:
        """``p(component | x)`` (``y=None``) or ``p(component | x, y)``, ``[n, K]``."""
        if y is None:
            return torch.softmax(joint, dim=1)
        y = validate.labels(y, joint.shape[0], self.num_classes).to(joint.device)
        if self._one_per_class:
            return torch.nn.functional.one_hot(y, self.num_components).to(joint.dtype)
        return torch.softmax(joint.masked_fill(self.labels[None] != y[:, None], -math.inf), dim=1)

    def __repr__(self) -> str:
        if not self._one_per_class:
            return f"GaussianMixture2D(K={self.num_components} components, {self.num_classes} classes)"
        return f"GaussianMixture2D(K={self.num_classes}, weights={[round(w, 3) for w in self.weights.tolist()]})"

    def _check_x(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != 2:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must be a tensor of shape [n, 2], got {shape}")
        return x.to(torch.float64)

    def sample(self, n: int, y: torch.Tensor | int | None = None,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` pairs ``(x [n, 2], y [n])``; labels from ``weights`` unless ``y`` is given.

        Args:
            n: an int >= 0.
            y: ``None`` (drawn by weight), an int, or ``[n]`` long in ``0..K-1``.
            generator: the source of the draws."""
        validate.integer(n, "n", minimum=0)
        if y is None:
            comp = torch.multinomial(self.weights, n, replacement=True, generator=generator) if n else \
                torch.zeros(0, dtype=torch.long)
            y = self.labels[comp]
        else:
            y = validate.labels(y, n, self.num_classes)
            comp = y if self._one_per_class or not n else self._component_of_class(y, generator)
        z = torch.randn(n, 2, generator=generator, dtype=torch.float64)
        chol = torch.linalg.cholesky(self.covs)
        x = self.means[comp] + (chol[comp] @ z[:, :, None])[:, :, 0]
        return x.float(), y

    def _component_of_class(self, y: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """One component of each sample's class ``y [n]``, drawn by the components' weights."""
        within = self.weights[None] * (self.labels[None] == torch.arange(self.num_classes)[:, None])  # [C, K]
        return torch.multinomial(within[y], 1, generator=generator)[:, 0]

    def noised(self, alpha_bar: float) -> "GaussianMixture2D":
        """The exact law of ``x_t = sqrt(a) x0 + sqrt(1 - a) eps`` with ``a = alpha_bar``."""
        a = validate.number(alpha_bar, "alpha_bar", above=0, maximum=1)
        return GaussianMixture2D(*noised_gaussians(self.means, self.covs, a, 1 - a), self.weights, self.labels)

    def _joint(self, x: torch.Tensor):
        """``log pi_k + log N(x; mu_k, S_k)`` ``[n, K]`` and ``S_k^{-1}(x - mu_k)``."""
        log_pdf, prec_d = _gaussian_terms(self._check_x(x), self.means[None], self.covs[None])
        return self.weights.log() + log_pdf, prec_d

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | int | None = None) -> torch.Tensor:
        """``log p(x)`` (``y=None``) or ``log p(x | y)``, shape ``[n]``.

        Args:
            x: ``[n, 2]``.
            y: ``None``, an int or ``[n]`` long in ``0..K-1``."""
        joint, _ = self._joint(x)
        if y is None:
            return torch.logsumexp(joint, dim=1)
        y = validate.labels(y, x.shape[0], self.num_classes).to(x.device)
        class_log_weights = self._classes(self.weights.log()[None])[0]
        return (self._classes(joint) - class_log_weights).gather(1, y[:, None])[:, 0]

    def posterior(self, x: torch.Tensor) -> torch.Tensor:
        """``p(y | x)``, shape ``[n, K]``, each row summing to one.

        Args:
            x: ``[n, 2]``. Returns ``[n, C]`` over the ``C`` classes, float64."""
        joint, _ = self._joint(x)
        return torch.softmax(self._classes(joint), dim=1)

    def score(self, x: torch.Tensor, y: torch.Tensor | int | None = None) -> torch.Tensor:
        """``grad_x log p(x)`` (``y=None``) or ``grad_x log p(x | y)``, shape ``[n, 2]``.

        Args:
            x: ``[n, 2]``.
            y: ``None``, an int or ``[n]`` long in ``0..K-1``."""
        joint, prec_d = self._joint(x)
        return -(self._responsibilities(joint, y)[..., None] * prec_d).sum(1)

    def _noised_joint(self, x: torch.Tensor, signal_var: float | torch.Tensor, noise_var: float | torch.Tensor):
        """:meth:`_joint` of the law of ``c x0 + s eps`` (:func:`noised_gaussians`), one law per sample
        (or one for all: a sampler's batch shares one noise level)."""
        x = self._check_x(x)
        c2, s2 = (torch.as_tensor(v, dtype=torch.float64, device=x.device).reshape(-1) for v in (signal_var, noise_var))
        if not (torch.isfinite(c2).all() and torch.isfinite(s2).all() and (c2 >= 0).all() and (s2 >= 0).all()
                and (c2 + s2 > 0).all()):
            raise ValueError("signal_var and noise_var must be finite, >= 0 and not both 0")
        if c2.shape != s2.shape or c2.numel() not in (1, x.shape[0]):
            raise ValueError(f"signal_var and noise_var must be floats or one entry per sample ({x.shape[0]})")
        if c2.numel() > 1 and bool((c2 == c2[0]).all() and (s2 == s2[0]).all()):
            c2, s2 = c2[:1], s2[:1]
        log_pdf, prec_d = _gaussian_terms(x, *noised_gaussians(self.means, self.covs, c2, s2))
        return self.weights.log() + log_pdf, prec_d

    def noised_score(self, x: torch.Tensor, signal_var: float | torch.Tensor, noise_var: float | torch.Tensor,
                     y: torch.Tensor | int | None = None) -> torch.Tensor:
        """The exact score ``grad log p(x [| y])`` ``[n, 2]`` of the law of ``c x0 + s eps``
        (DDPM's ``x_t``: ``c^2 = alpha_bar_t``, ``s^2 = 1 - alpha_bar_t``), float64.

        Args:
            x: ``[n, 2]``.
            signal_var, noise_var: ``c^2``, ``s^2``, floats or ``[n]`` (one per sample).
            y: ``None``, an int or ``[n]`` long in ``0..K-1``."""
        joint, prec_d = self._noised_joint(x, signal_var, noise_var)
        return -(self._responsibilities(joint, y)[..., None] * prec_d).sum(1)

    def noised_log_posterior(self, x: torch.Tensor, signal_var: float | torch.Tensor,
                             noise_var: float | torch.Tensor) -> torch.Tensor:
        """The exact ``log p(y | x)`` ``[n, C]`` under the law of ``c x0 + s eps``, float64.

        Args:
            x: ``[n, 2]``.
            signal_var, noise_var: ``c^2``, ``s^2``, floats or ``[n]`` (one per sample)."""
        joint, _ = self._noised_joint(x, signal_var, noise_var)
        return torch.log_softmax(self._classes(joint), dim=1)

    def denoised(self, x: torch.Tensor, signal_var: float | torch.Tensor, noise_var: float | torch.Tensor,
                 y: torch.Tensor | int | None = None) -> torch.Tensor:
        """The exact posterior mean ``E[x0 | c x0 + s eps = x (, y)]`` ``[n, 2]``, float64: component
        ``k``'s Gaussian posterior mean ``mu_k + c S_k C_k^-1 (x - c mu_k)``, ``C_k = c^2 S_k + s^2 I``,
        weighted by its responsibility. Defined at ``c = 0`` too (then the prior mean).

        Args:
            x: ``[n, 2]``.
            signal_var, noise_var: ``c^2``, ``s^2``, floats or ``[n]`` (one per sample).
            y: ``None``, an int or ``[n]`` long in ``0..K-1``."""
        joint, prec_d = self._noised_joint(x, signal_var, noise_var)
        c = torch.as_tensor(signal_var, dtype=torch.float64, device=joint.device).sqrt().reshape(-1, 1, 1)
        post_means = self.means + c * (self.covs @ prec_d[..., None])[..., 0]               # [n, K, 2]
        return (self._responsibilities(joint, y)[..., None] * post_means).sum(1)

    def eps_fn(self, schedule: Schedule, y: torch.Tensor | int | None = None) -> EpsFn:
        """The exact denoiser (:func:`course_lib.oracles.eps_fn`); ``y=None`` the marginal one.

        Args:
            y: ``None``, an int or ``[B]`` long. The eps function takes ``x [B, 2]``, ``t [B]`` long."""
        return oracles.eps_fn(self, schedule, y)

    def log_posterior_fn(self, schedule: Schedule) -> LogProbFn:
        """The exact noise-aware classifier ``log p(y | x_t)`` (:func:`course_lib.oracles.log_posterior_fn`).

        Args:
            schedule: the noise schedule. The function takes ``x [B, 2]``, ``t [B]`` long."""
        return oracles.log_posterior_fn(self, schedule)

    def broadened(self, delta: float) -> "GaussianMixture2D":
        """The same mixture with every covariance ``S_k + delta^2 I``: the data law blurred by
        ``N(0, delta^2 I)``, whose exact ``eps_fn`` is a "bad model" for autoguidance."""
        delta = validate.number(delta, "delta", minimum=0)
        return GaussianMixture2D(*noised_gaussians(self.means, self.covs, 1.0, delta**2), self.weights, self.labels)

    def conditional(self, y: int) -> "GaussianMixture2D":
        """``p(x | y)`` as a one-class mixture of class ``y``'s components."""
        validate.integer(y, "y", minimum=0, maximum=self.num_classes - 1)
        keep = self.labels == y
        return GaussianMixture2D(self.means[keep], self.covs[keep], self.weights[keep])

    def product(self, other: "GaussianMixture2D") -> "GaussianMixture2D":
        """The normalised product density ``p(x) q(x) / Z`` (the exact AND target) as a mixture.

        ``N(x; m, S) N(x; n, R) = N(m; n, S + R) N(x; c, C)`` with ``C = (S^-1 + R^-1)^-1`` and
        ``c = C (S^-1 m + R^-1 n)`` (Petersen & Pedersen, The Matrix Cookbook, eq. 371), so component
        ``(k, j)`` has weight ``∝ pi_k rho_j N(mu_k; nu_j, S_k + R_j)``. Its class is
        ``y_p * C_q + y_q`` (``y_p`` its class in ``self``, ``y_q`` in ``other``, ``C_q`` = ``other``'s
        classes). Weights below ``1e-300`` of the largest are raised to it (float64's floor)."""
        if not isinstance(other, GaussianMixture2D):
            raise ValueError(f"other must be a GaussianMixture2D, got {type(other).__name__}")
        prec_p, prec_q = torch.linalg.inv(self.covs), torch.linalg.inv(other.covs)
        covs = torch.linalg.inv(prec_p[:, None] + prec_q[None])                          # [K, J, 2, 2]
        covs = (covs + covs.transpose(-1, -2)) / 2
        info = (prec_p @ self.means[..., None])[:, None] + (prec_q @ other.means[..., None])[None]
        means = (covs @ info)[..., 0]                                                    # [K, J, 2]
        d = self.means[:, None] - other.means[None]                                      # [K, J, 2]
        joint_covs = self.covs[:, None] + other.covs[None]                               # [K, J, 2, 2]
        mahal = (d * torch.linalg.solve(joint_covs, d[..., None])[..., 0]).sum(-1)
        log_overlap = -0.5 * (mahal + torch.logdet(joint_covs)) - LOG_2PI                 # log N(mu_k; nu_j, S_k + R_j)
        log_w = self.weights.log()[:, None] + other.weights.log()[None] + log_overlap
        log_w = (log_w - log_w.max()).clamp(min=math.log(1e-300))
        labels = self.labels[:, None] * other.num_classes + other.labels[None]
        return GaussianMixture2D(means.reshape(-1, 2), covs.reshape(-1, 2, 2), log_w.exp().flatten(),
                                 labels.flatten())


def _check_component_labels(labels, K: int) -> torch.Tensor:
    if labels is None:
        return torch.arange(K)
    labels = torch.as_tensor(labels)
    if labels.shape != (K,) or labels.dtype not in (torch.int32, torch.int64) or labels.min() < 0:
        raise ValueError(f"labels must be [K] = [{K}] non-negative integer class indices, got {labels!r}")
    labels = labels.long()
    if len(labels.unique()) != int(labels.max()) + 1:
        raise ValueError(f"labels must use every class 0..{int(labels.max())} at least once, got {labels.tolist()}")
    return labels


# the exact denoiser and classifier behind the model interfaces live in oracles; lessons find them here
OracleDenoiser, OracleClassifier = oracles.OracleDenoiser, oracles.OracleClassifier


def _isotropic(means, std: float) -> GaussianMixture2D:
    means = torch.as_tensor(means, dtype=torch.float64)
    covs = (std**2) * torch.eye(2, dtype=torch.float64).expand(len(means), 2, 2).clone()
    return GaussianMixture2D(means, covs, torch.ones(len(means)))


def _rotated_cov(angle: float, major: float, minor: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    rot = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    return rot @ torch.diag(torch.tensor([major**2, minor**2], dtype=torch.float64)) @ rot.T


def ring(k: int = 8, radius: float = 3.0, std: float = 0.4) -> GaussianMixture2D:
    """``k`` equal round components evenly spaced on a circle."""
    angles = torch.arange(k, dtype=torch.float64) * 2 * math.pi / k
    return _isotropic(radius * torch.stack([angles.cos(), angles.sin()], 1), std)


def grid(side: int = 3, spacing: float = 2.5, std: float = 0.4) -> GaussianMixture2D:
    """``side x side`` equal round components on a square grid centred at the origin."""
    coords = (torch.arange(side, dtype=torch.float64) - (side - 1) / 2) * spacing
    gx, gy = torch.meshgrid(coords, coords, indexing="xy")
    return _isotropic(torch.stack([gx.flatten(), gy.flatten()], 1), std)


def unequal_weights() -> GaussianMixture2D:
    """Three overlapping round classes with weights 0.6, 0.3 and 0.1."""
    means = [[-1.5, -0.8], [1.5, -0.8], [0.0, 1.6]]
    covs = torch.stack([0.8**2 * torch.eye(2, dtype=torch.float64)] * 3)
    return GaussianMixture2D(means, covs, [0.6, 0.3, 0.1])


def anisotropic() -> GaussianMixture2D:
    """Three elongated, rotated, overlapping classes (the lessons' default)."""
    means = [[-1.6, -1.0], [1.6, -1.0], [0.0, 1.8]]
    covs = torch.stack([_rotated_cov(math.pi / 4, 1.0, 0.35), _rotated_cov(-math.pi / 4, 1.0, 0.35),
                        _rotated_cov(0.0, 1.2, 0.4)])
    return GaussianMixture2D(means, covs, [0.4, 0.35, 0.25])


def branches(depth: int = 4, length: float = 1.5, per_branch: int = 3, thickness: float = 0.06) -> GaussianMixture2D:
    """Two classes, each a binary tree of thin branches growing from the origin in opposite
    directions (class 0 up and right, class 1 down and left), after the 2-D example of
    Karras et al. 2024 (their Fig. 2). Each branch is ``per_branch`` thin Gaussians along it;
    children are ``0.7`` times as long and thin, turned by ``+-0.6 * 0.8^level`` rad; a branch's
    mass is ``length * 0.5^level``. Low-density gaps separate the branches, so a model that
    blurs the data leaks mass into them."""
    validate.integer(depth, "depth", minimum=1)
    validate.integer(per_branch, "per_branch", minimum=1)
    validate.number(length, "length", above=0)
    validate.number(thickness, "thickness", above=0)
    means, covs, weights, labels = [], [], [], []

    def grow(y: int, level: int, start: torch.Tensor, angle: float, size: float) -> None:
        direction = torch.tensor([math.cos(angle), math.sin(angle)], dtype=torch.float64)
        for i in range(per_branch):
            means.append(start + direction * size * (i + 0.5) / per_branch)
            covs.append(_rotated_cov(angle, 0.5 * size / per_branch, thickness * 0.7**level))
            weights.append(size * 0.5**level / per_branch)
            labels.append(y)
        if level + 1 < depth:
            for sign in (1, -1):
                grow(y, level + 1, start + direction * size, angle + sign * 0.6 * 0.8**level, 0.7 * size)

    origin = torch.zeros(2, dtype=torch.float64)
    grow(0, 0, origin, math.pi / 4, length)
    grow(1, 0, origin, 5 * math.pi / 4, length)
    return GaussianMixture2D(torch.stack(means), torch.stack(covs), weights, labels)


PRESETS: dict[str, Callable[[], GaussianMixture2D]] = {
    "ring": ring, "grid": grid, "unequal_weights": unequal_weights, "anisotropic": anisotropic,
}   # one component per class each; branches() (several per class) is called by name


def make_mixture(name: str) -> GaussianMixture2D:
    """One of the presets by name: ``ring``, ``grid``, ``unequal_weights``, ``anisotropic``."""
    if name not in PRESETS:
        raise ValueError(f"name must be one of {sorted(PRESETS)}, got {name!r}")
    return PRESETS[name]()


def sklearn_shape(name: str, n: int, noise: float = 0.08, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Labelled ``moons`` or ``circles`` from scikit-learn, scaled to about the
    presets' size: ``(x [n, 2] float32, y [n] long)``. No exact answers exist."""
    from sklearn.datasets import make_circles, make_moons

    if name == "moons":
        x, y = make_moons(n, noise=noise, random_state=seed)
        x = (x - np.array([0.5, 0.25])) * 2.0
    elif name == "circles":
        x, y = make_circles(n, noise=noise, factor=0.5, random_state=seed)
        x = x * 3.0
    else:
        raise ValueError(f"name must be 'moons' or 'circles', got {name!r}")
    return torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long)
