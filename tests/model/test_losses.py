"""ITC / ED / EC losses pinned on hand-computed cases, and the cross-rank gather."""

import math

import pytest
import torch
import torch.nn.functional as F

from vilem.model.losses import (
    contrastive_loss,
    error_correction_loss,
    error_detection_loss,
    gather_with_local_grad,
    positive_targets,
)

E1, E2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])


def test_itc_counts_every_caption_of_an_item_as_a_positive():
    # images e1, e2; texts e1, e1 (both captions of image 0), e2; logit scale 1
    images, texts = torch.stack([E1, E2]), torch.stack([E1, E1, E2])
    loss = contrastive_loss(images, texts, 1.0, torch.tensor([0, 1]), torch.tensor([0, 0, 1]))
    e = math.e
    # image 0: logits [1, 1, 0], target [.5, .5, 0] -> -log(e / (2e + 1))
    # image 1: logits [0, 0, 1], target [0, 0, 1] -> -log(e / (e + 2))
    i2t = 0.5 * (math.log(2 + 1 / e) + math.log(1 + 2 / e))
    # every text: logits (1, 0) towards its own image -> -log(e / (e + 1))
    t2i = math.log(1 + 1 / e)
    assert loss.item() == pytest.approx(0.5 * (i2t + t2i), rel=1e-6)


def test_itc_single_positive_is_clip_loss():
    g = torch.Generator().manual_seed(0)
    img = F.normalize(torch.randn(5, 8, generator=g), dim=-1)
    txt = F.normalize(torch.randn(5, 8, generator=g), dim=-1)
    ids = torch.arange(5)
    logits = 10.0 * img @ txt.t()
    clip = 0.5 * (F.cross_entropy(logits, ids) + F.cross_entropy(logits.t(), ids))
    assert contrastive_loss(img, txt, 10.0, ids, ids).item() == pytest.approx(clip.item())


def test_itc_queue_entries_of_the_same_item_are_positives():
    # one image (id 7) against keys [text e1 (id 7), queued text e1 (id 7), queued text e2 (id 3)]
    keys = (torch.stack([E1, E1, E2]), torch.tensor([7, 7, 3]))
    img, txt, ids = E1[None], E1[None], torch.tensor([7])
    loss = contrastive_loss(img, txt, 1.0, ids, ids, text_keys=keys)
    e = math.e
    i2t = math.log(2 + 1 / e)  # logits [1, 1, 0], two positives
    t2i = 0.0  # a single image key, which is the positive
    assert loss.item() == pytest.approx(0.5 * (i2t + t2i), rel=1e-6)


def test_itc_distillation_mixes_soft_and_hard_targets():
    images, texts = torch.stack([E1, E2]), torch.stack([E1, E2])
    ids = torch.tensor([0, 1])
    uniform = torch.full((2, 2), 0.5)
    loss = contrastive_loss(images, texts, 1.0, ids, ids, soft_targets=(uniform, uniform), alpha=1)
    # fully soft uniform targets over logits (1, 0): 0.5 * -log(e/(e+1)) + 0.5 * -log(1/(e+1))
    e = math.e
    expected = 0.5 * math.log(1 + 1 / e) + 0.5 * math.log(e + 1)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert contrastive_loss(
        images, texts, 1.0, ids, ids, soft_targets=(uniform, uniform), alpha=0.0
    ).item() == pytest.approx(math.log(1 + 1 / e), rel=1e-6)


def test_positive_targets_are_uniform_over_positives():
    t = positive_targets(torch.tensor([0, 1, 2]), torch.tensor([0, 0, 1, 0]))
    assert torch.equal(t[0], torch.tensor([1 / 3, 1 / 3, 0, 1 / 3]))
    assert torch.equal(t[1], torch.tensor([0.0, 0.0, 1.0, 0.0]))
    assert torch.equal(t[2], torch.zeros(4))  # no positive key: no target mass


def test_error_detection_sums_over_valid_tokens_and_divides_by_replaced():
    labels = torch.tensor([[-100, 0, 1, 0, -100], [-100, 1, 1, 0, -100]])
    logits = torch.zeros(2, 5, 2)  # every valid token costs log 2
    # 6 valid tokens, 3 replaced -> 6 log 2 / 3
    assert error_detection_loss(logits, labels).item() == pytest.approx(2 * math.log(2))
    # no replaced token: divide by 1, not 0
    clean = torch.tensor([[-100, 0, 0, -100]])
    assert error_detection_loss(torch.zeros(1, 4, 2), clean).item() == pytest.approx(
        2 * math.log(2)
    )


def test_error_detection_ignores_padding_logits():
    labels = torch.tensor([[-100, 1, 0, -100]])
    logits = torch.zeros(1, 4, 2)
    logits[0, 0] = torch.tensor([100.0, -100.0])  # CLS: a terrible but ignored prediction
    logits[0, 1] = torch.tensor([0.0, math.log(3)])  # p(replaced) = 3/4
    expected = -math.log(0.75) + math.log(2)
    assert error_detection_loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)


def test_error_correction_is_mean_cross_entropy_at_edits():
    logits = torch.zeros(2, 10)
    logits[0, 3] = math.log(9)  # p(3) = 9 / 18 = 1/2
    loss = error_correction_loss(logits, torch.tensor([3, 4]))
    # row 0: -log(1/2); row 1 (uniform over 10): log 10
    assert loss.item() == pytest.approx(0.5 * (math.log(2) + math.log(10)), rel=1e-6)


def test_error_correction_without_edits_is_zero_with_grad():
    logits = torch.zeros(0, 10, requires_grad=True)
    loss = error_correction_loss(logits, torch.zeros(0, dtype=torch.long))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert logits.grad is not None


def test_gather_is_identity_on_one_process():
    x = torch.randn(3, 4, requires_grad=True)
    assert gather_with_local_grad(x) is x


def _gather_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        # ranks hold different batch sizes: 2 rows on rank 0, 3 on rank 1
        x = torch.full((2 + rank, 2), float(rank + 1), requires_grad=True)
        gathered = gather_with_local_grad(x)
        (gathered * torch.arange(1.0, gathered.shape[0] + 1)[:, None]).sum().backward()
        torch.save({"gathered": gathered.detach(), "grad": x.grad}, f"{out_dir}/{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_gather_across_two_gloo_ranks_sums_every_ranks_gradient(tmp_path, free_port):
    import torch.multiprocessing as mp

    mp.spawn(_gather_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "1.pt", weights_only=True)
    expected = torch.tensor([[1.0, 1.0]] * 2 + [[2.0, 2.0]] * 3)
    assert torch.equal(r0["gathered"], expected) and torch.equal(r1["gathered"], expected)
    # both ranks compute the same loss (weights 1..5 by global row); each rank's own rows get
    # the sum of both ranks' gradients for their slot, so DDP's average gives the 1-process one
    assert torch.equal(r0["grad"], torch.tensor([[2.0, 2.0], [4.0, 4.0]]))
    assert torch.equal(r1["grad"], torch.tensor([[6.0, 6.0], [8.0, 8.0], [10.0, 10.0]]))
