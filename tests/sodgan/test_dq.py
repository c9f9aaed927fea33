"""D_q: input layout, scoring, the discriminator step, and that it learns to tell matching masks from others."""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F

from synthsod.errors import SynthsodError
from synthsod.evaluation.oracle import scene_tensors
from synthsod.sodgan.dq import QualityDiscriminator, adversarial_loss, dq_step, pair_input


def roc_auc(positive: torch.Tensor, negative: torch.Tensor) -> float:
    """P(score of a random positive > score of a random negative), ties counted half (Mann-Whitney)."""
    diff = positive[:, None] - negative[None, :]
    return float((diff > 0).double().mean() + 0.5 * (diff == 0).double().mean())


def test_roc_auc_helper():
    assert roc_auc(torch.tensor([2.0, 3.0]), torch.tensor([0.0, 1.0])) == 1.0
    assert roc_auc(torch.tensor([0.0]), torch.tensor([1.0])) == 0.0
    assert roc_auc(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.0])) == 0.5


def test_pair_input_maps_the_mask_to_the_image_range():
    images = torch.zeros(2, 3, 8, 8)
    masks = torch.zeros(2, 1, 8, 8)
    masks[:, :, :4] = 1.0
    x = pair_input(images, masks)
    assert x.shape == (2, 4, 8, 8)
    assert torch.equal(x[:, 3, :4], torch.ones(2, 4, 8)) and torch.equal(x[:, 3, 4:], -torch.ones(2, 4, 8))
    assert torch.equal(pair_input(images, masks[:, 0]), x)  # [N, H, W] masks are accepted too
    with pytest.raises(SynthsodError, match="masks"):
        pair_input(images, torch.zeros(2, 1, 4, 4))


@pytest.fixture(scope="module")
def dq() -> QualityDiscriminator:
    torch.manual_seed(0)
    return QualityDiscriminator()


def test_score_is_a_batched_probability_in_eval_mode(dq):
    images = torch.rand(5, 3, 64, 64) * 2 - 1
    masks = torch.rand(5, 1, 64, 64)
    dq.train()
    scores = dq.score(images, masks, batch_size=2)
    assert scores.shape == (5,) and scores.dtype == torch.float32 and not scores.requires_grad
    assert float(scores.min()) > 0 and float(scores.max()) < 1
    assert dq.training  # mode restored
    # eval mode: a pair's score does not depend on its batch
    assert torch.allclose(scores[:2], dq.score(images[:2], masks[:2]), atol=1e-6)


def test_dq_step_moves_the_logits_apart():
    torch.manual_seed(0)
    dq = QualityDiscriminator()
    opt = torch.optim.Adam(dq.parameters(), lr=1e-3)
    images = torch.rand(4, 3, 64, 64) * 2 - 1
    real, fake = torch.ones(4, 1, 64, 64), torch.zeros(4, 1, 64, 64)
    losses = [dq_step(dq, opt, images, real, images, fake) for _ in range(15)]
    assert losses[-1] < losses[0]
    assert float(dq.score(images, real).mean()) > float(dq.score(images, fake).mean())


class _Recorder(torch.nn.Module):
    """A stand-in D_q that records the pairs it is shown and returns a learnable constant logit."""

    def __init__(self):
        super().__init__()
        self.logit = torch.nn.Parameter(torch.zeros(()))
        self.seen = []

    def forward(self, images, masks):
        self.seen.append((images.clone(), masks.clone()))
        return self.logit.expand(images.shape[0])


@pytest.mark.parametrize("mismatched", [False, True])
def test_dq_step_adds_each_real_image_with_another_pairs_mask_as_a_negative(mismatched):
    images = torch.arange(3.0).view(3, 1, 1, 1).expand(3, 3, 4, 4)
    real = torch.stack([torch.full((1, 4, 4), v) for v in (0.1, 0.2, 0.3)])
    fake = torch.zeros(3, 1, 4, 4)
    dq = _Recorder()
    loss = dq_step(dq, torch.optim.SGD(dq.parameters(), lr=0.0), images, real, images, fake, mismatched)
    seen_images, seen_masks = dq.seen[0]
    expected = [real, fake, real.roll(1, dims=0)] if mismatched else [real, fake]
    assert torch.equal(seen_masks, torch.cat(expected))
    assert torch.equal(seen_images, torch.cat([images] * len(expected)))
    # a constant logit 0 costs log 2 per pair whatever the labels; the labels: 3 real, the rest negatives
    assert loss == pytest.approx(torch.log(torch.tensor(2.0)).item())
    dq.logit.data.fill_(1.0)
    positives, negatives = 3, 3 * (len(expected) - 1)
    expected_loss = (positives * F.softplus(-torch.tensor(1.0)) + negatives * F.softplus(torch.tensor(1.0))) / (
        positives + negatives
    )
    assert dq_step(dq, torch.optim.SGD(dq.parameters(), lr=0.0), images, real, images, fake, mismatched) == (
        pytest.approx(expected_loss.item())
    )


def test_adversarial_loss_is_differentiable_in_the_mask_only(dq):
    masks = torch.rand(2, 1, 64, 64, requires_grad=True)
    loss = adversarial_loss(dq, torch.zeros(2, 3, 64, 64), masks)
    loss.backward()
    assert masks.grad is not None and float(masks.grad.abs().sum()) > 0
    assert float(loss.detach()) > 0


@pytest.fixture(scope="module")
def demo_pairs():
    """Scenes of the scene world (the demo's real data) with their exact masks: 96 to train, 48 held out."""
    return scene_tensors(0, "train", 96, 64), scene_tensors(0, "test", 48, 64)


def mismatched(n: int, generator: torch.Generator) -> torch.Tensor:
    """A permutation with no fixed point: every image gets another image's mask."""
    return (torch.arange(n) + torch.randint(1, n, (n,), generator=generator)) % n


def test_dq_learns_to_reject_masks_of_other_images(demo_pairs):
    (train_images, train_masks), (test_images, test_masks) = demo_pairs
    torch.manual_seed(0)
    dq = QualityDiscriminator()
    opt = torch.optim.Adam(dq.parameters(), lr=1e-3)
    draws = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(120):
        index = torch.randperm(len(train_images), generator=draws)[:16]
        other = index[mismatched(16, draws)]
        dq_step(dq, opt, train_images[index], train_masks[index], train_images[index], train_masks[other])
    elapsed = time.perf_counter() - start
    real = dq.score(test_images, test_masks)
    fake = dq.score(test_images, test_masks[(torch.arange(48) + 1) % 48])
    auc = roc_auc(real, fake)
    print(
        f"D_q: held-out AUC {auc:.3f}, mean score real {float(real.mean()):.3f} vs mismatched "
        f"{float(fake.mean()):.3f}, trained in {elapsed:.1f} s"
    )
    assert auc >= 0.75
    assert float(real.mean()) > float(fake.mean()) + 0.15


def test_dq_upsamples_small_pairs_to_its_input_size():
    torch.manual_seed(0)
    seen = []
    dq = QualityDiscriminator(input_size=96)
    dq.backbone.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape)))
    dq.eval()
    dq(torch.zeros(2, 3, 64, 64), torch.zeros(2, 1, 64, 64))
    dq(torch.zeros(2, 3, 128, 128), torch.zeros(2, 1, 128, 128))
    assert seen == [(2, 4, 96, 96), (2, 4, 128, 128)]
