"""How far a picture lies from every class, in the model's penultimate feature space: the
class-conditional Gaussian detector of Lee et al. 2018 ("Mahalanobis"), one mean per class and one
covariance shared by all, estimated on the training split (no outside pictures).

The score is the smallest squared Mahalanobis distance to a class mean. It is written as what a
graph of standard layers computes: features f are whitened, z = f @ W with W W^T = Σ^-1 (a
Cholesky factor of the precision), and ||z - m_c||^2 = ||z||^2 - 2 z.m_c + ||m_c||^2 with m_c the
whitened means (kerastl.confidence.model). Two baselines are kept for the measurements: the top
softmax probability (Hendrycks and Gimpel 2017) and the energy score (Liu et al. 2020)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHRINKAGE = 1e-3  # added to the covariance's diagonal, as a share of its mean variance: a singular covariance stays invertible


@dataclass(frozen=True)
class GaussianDetector:
    whiten: np.ndarray  # [d, d]: z = f @ whiten
    means: np.ndarray  # [classes, d]: the class means, whitened

    @property
    def centre(self) -> np.ndarray:
        """The mean of the whitened class means, [d]: the graph subtracts it from z and the means."""
        return self.means[np.abs(self.means).max(axis=1) < 1e5].mean(axis=0)

    @classmethod
    def fit(cls, features: np.ndarray, y: np.ndarray, classes: int) -> "GaussianDetector":
        f = np.asarray(features, "float64")
        present = [c for c in range(classes) if (y == c).any()]
        means = np.zeros((classes, f.shape[1]))
        for c in present:
            means[c] = f[y == c].mean(axis=0)
        centred = f - means[y]
        covariance = centred.T @ centred / max(len(f) - len(present), 1)
        covariance += SHRINKAGE * np.trace(covariance) / len(covariance) * np.eye(len(covariance))
        whiten = np.linalg.cholesky(np.linalg.inv(covariance))  # W W^T = Σ^-1, so ||(f - μ) W||^2 is the distance
        white_means = means @ whiten
        if len(present) < classes:  # a class with no training picture: far from everything
            white_means[[c for c in range(classes) if c not in present]] = 1e6
        return cls(whiten.astype("float32"), white_means.astype("float32"))

    def distances(self, features: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance to every class mean, [n, classes]."""
        z = np.asarray(features, "float64") @ self.whiten
        return ((z[:, None, :] - self.means[None, :, :]) ** 2).sum(axis=2)

    def min_distance(self, features: np.ndarray) -> np.ndarray:
        return self.distances(features).min(axis=1)


def energy(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Liu et al. 2020's negative free energy, T log Σ exp(logit / T): higher is more in-distribution."""
    z = np.asarray(logits, "float64") / temperature
    top = z.max(axis=1)
    return temperature * (top + np.log(np.exp(z - top[:, None]).sum(axis=1)))


def auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    """Area under the ROC curve of a score that should be higher inside than outside: the chance
    that a random inside picture scores above a random outside one (ties count half)."""
    from sklearn.metrics import roc_auc_score

    labels = np.r_[np.ones(len(inside)), np.zeros(len(outside))]
    return float(roc_auc_score(labels, np.r_[inside, outside]))
