"""The PyTorch reference of the training benchmark: a VAE trained the plain PyTorch way.

A Python loop over a ``DataLoader`` (shuffled, ``drop_last`` so every batch is full),
dynamic binarisation of each batch with ``torch.bernoulli``, the summed binary
cross-entropy of the decoder's probabilities plus the analytic KL as the loss, and
``torch.optim.Adam`` stepping on that sum. The network is the one the JAX contenders
train (784-h-z, relu, Bernoulli decoder, Gaussian encoder with a log standard deviation),
with PyTorch's default initialisation.

Importing this module imports torch; callers check that torch is installed first.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

NUM_PIXELS = 784


class TorchVAE(nn.Module):
    """Encoder 784-hidden-(2 * latent) and decoder latent-hidden-784, relu between layers."""

    def __init__(self, hidden: int, latent: int):
        super().__init__()
        self.latent = latent
        self.enc_hidden = nn.Linear(NUM_PIXELS, hidden)
        self.enc_out = nn.Linear(hidden, 2 * latent)
        self.dec_hidden = nn.Linear(latent, hidden)
        self.dec_out = nn.Linear(hidden, NUM_PIXELS)

    def forward(self, x: torch.Tensor):
        loc, log_scale = self.enc_out(F.relu(self.enc_hidden(x))).chunk(2, dim=-1)
        z = loc + torch.exp(log_scale) * torch.randn_like(loc)
        probs = torch.sigmoid(self.dec_out(F.relu(self.dec_hidden(z))))
        return probs, loc, log_scale


def negative_elbo_sum(probs, x, loc, log_scale) -> torch.Tensor:
    """Summed over the batch: Bernoulli reconstruction NLL plus KL(q(z|x) || N(0, I))."""
    reconstruction = F.binary_cross_entropy(probs, x, reduction="sum")
    kl = 0.5 * torch.sum(loc**2 + torch.exp(2.0 * log_scale) - 1.0 - 2.0 * log_scale)
    return reconstruction + kl


class TorchTrainer:
    """One object per run: the model, its optimiser and the shuffled data loader.

    ``threads`` is applied (``torch.set_num_threads``, which is process-wide) at the start
    of every epoch, so contenders with different thread counts can take turns. With
    ``device="cuda"`` the model lives on the GPU and each batch is copied there (the
    plain PyTorch way); the epoch's loss is summed on the device and read once.
    """

    def __init__(
        self,
        images: np.ndarray,
        *,
        hidden: int,
        latent: int,
        batch_size: int,
        learning_rate: float,
        seed: int,
        threads: int,
        device: str = "cpu",
    ):
        torch.set_num_threads(threads)
        torch.manual_seed(seed)
        self.threads = threads
        self.device = torch.device(device)
        self.model = TorchVAE(hidden, latent).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=learning_rate)
        pixels = torch.from_numpy(np.ascontiguousarray(images).reshape(-1, NUM_PIXELS))
        self.loader = DataLoader(
            TensorDataset(pixels),
            batch_size=batch_size,
            shuffle=True,
            drop_last=True,
            generator=torch.Generator().manual_seed(seed),
        )

    def run_epoch(self) -> dict[str, float]:
        """One pass over the loader; the mean per-example loss and the time spent loading."""
        torch.set_num_threads(self.threads)
        self.model.train()
        total, steps, loading = torch.zeros((), device=self.device), 0, 0.0
        tic = time.perf_counter()
        for (pixels,) in self.loader:
            loading += time.perf_counter() - tic
            x = torch.bernoulli(pixels.to(self.device).float() / 255.0)
            self.optimizer.zero_grad()
            loss = negative_elbo_sum(*self._forward(x))
            loss.backward()
            self.optimizer.step()
            total += loss.detach() / x.shape[0]
            steps += 1
            tic = time.perf_counter()
        return {"loss": total.item() / steps, "data_loading_s": loading}

    def _forward(self, x):
        probs, loc, log_scale = self.model(x)
        return probs, x, loc, log_scale
