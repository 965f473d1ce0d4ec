"""Dataset kinds, prior_loss_weight and masked loss, proven on the tiny demo model.

- Regularization images: with prior_loss_weight 0 a run trains exactly what it trains without
  the regularization dataset; with 1 they change the trained weights; an epoch holds as many
  regularization samples as training samples; eval datasets never reach a batch.
- Masks: a black mask gives the adapters no gradient at all; a half mask trains only its
  half (the loss is the masked mean, no gradient reaches the other half's predictions); a
  mask of the wrong size is resized with a counted warning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from tests.trainer.conftest import effective, fast, read_events, run_in_process


def _folder(root: Path, name: str, colors: list[tuple[int, int, int]], size: int = 64) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    for i, color in enumerate(colors):
        Image.new("RGB", (size, size), color).save(folder / f"{name}{i}.png")
        (folder / f"{name}{i}.txt").write_text(f"{name} {i}, a block")
    return folder


def _entry(folder: Path, **over: Any) -> dict[str, Any]:
    return {"path": str(folder), "bucketing": False, **over}


# ---- regularization --------------------------------------------------------------------------


def _final_lora(run_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    (final,) = (run_dir / "weights").glob("*.safetensors")
    return load_file(final)


@pytest.mark.slow
def test_prior_loss_weight_zero_leaves_training_as_without_reg_and_one_changes_it(
    tmp_path: Path, demo_model: Path
) -> None:
    # demo_model: generated before the runs, so the first run draws no random numbers more.
    train = _folder(tmp_path, "subject", [(200, 40, 40), (40, 200, 40)])
    reg = _folder(tmp_path, "klass", [(20, 20, 220), (220, 220, 20), (90, 90, 90)])
    runs = {
        "none": [_entry(train)],
        "zero": [_entry(train), _entry(reg, kind="regularization")],
        "one": [_entry(train), _entry(reg, kind="regularization")],
    }
    weights = {}
    for name, datasets in runs.items():
        prior = 0.0 if name == "zero" else 1.0
        raw = fast(tmp_path / name, datasets=datasets, prior_loss_weight=prior, seed=7)
        raw |= {"max_train_steps": 2, "learning_rate": 1e-2}
        code, _ = run_in_process(raw)
        assert code == 0, read_events(tmp_path / name)[-1]
        weights[name] = _final_lora(tmp_path / name)
    assert weights["none"].keys() == weights["zero"].keys() == weights["one"].keys()
    assert all(torch.equal(weights["none"][k], weights["zero"][k]) for k in weights["none"])
    assert any(not torch.equal(weights["none"][k], weights["one"][k]) for k in weights["none"])


def test_an_epoch_holds_as_many_regularization_samples_as_training_samples(
    tmp_path: Path,
) -> None:
    from trainer.data import build_train_data, collate
    from trainer.run_config import RunConfig

    train = _folder(tmp_path, "subject", [(200, 40, 40)] * 5)
    reg = _folder(tmp_path, "klass", [(20, 20, 220)] * 3)
    held = _folder(tmp_path, "held", [(9, 9, 9)] * 2)
    cfg = effective(
        fast(
            tmp_path / "run",
            datasets=[
                _entry(train, repeats=2),
                _entry(reg, kind="regularization"),
                _entry(held, kind="eval"),
            ],
        )
    )
    entries = [RunConfig(e) for e in cfg["datasets"]]
    data = build_train_data(entries, 64, 2, 0, True, warn=lambda _m: None)
    items = [item for batch in data.sampler for item in batch]
    reg_items = [i for i, _ in items if data.records[i].is_reg]
    assert len(items) - len(reg_items) == 10  # 5 images x 2 repeats
    assert len(reg_items) == 10  # 3 class images cycled: 4 + 3 + 3
    assert sorted(reg_items.count(i) for i in set(reg_items)) == [3, 3, 4]
    assert not any("held" in data.records[i].path.name for i, _ in items)  # eval never trains
    first = next(iter(data.sampler))
    batch = collate([data.dataset[item] for item in first])
    assert batch["is_reg"] == [data.records[i].is_reg for i, _ in first]


def test_prior_loss_weight_scales_the_loss_of_regularization_samples_only() -> None:
    from trainer.data import weigh_samples
    from trainer.families.base import Noised
    from trainer.losses import training_loss

    torch.manual_seed(0)
    target = torch.randn(2, 4, 8, 8)
    pred = torch.randn(2, 4, 8, 8, requires_grad=True)
    noised = Noised(noisy=target, timesteps=torch.tensor([10, 20]), target=target)
    weigh_samples(noised, {"is_reg": [False, True], "masks": None}, 0.25, 1.0)
    loss = training_loss(
        pred,
        target,
        noised.timesteps,
        loss_type="l2",
        huber_schedule="constant",
        huber_c=0.1,
        snr_gamma=0.0,
        prediction_type="epsilon",
        noise_scheduler=None,
        weights=noised.weights,
    )
    per = ((pred - target) ** 2).mean(dim=(1, 2, 3))
    assert torch.allclose(loss, (per[0] + 0.25 * per[1]) / 2)
    weigh_samples(noised, {"is_reg": [False, True], "masks": None}, 0.0, 1.0)
    loss = training_loss(
        pred,
        target,
        noised.timesteps,
        loss_type="l2",
        huber_schedule="constant",
        huber_c=0.1,
        snr_gamma=0.0,
        prediction_type="epsilon",
        noise_scheduler=None,
        weights=noised.weights,
    )
    loss.backward()
    assert pred.grad is not None
    assert torch.count_nonzero(pred.grad[1]) == 0 and torch.count_nonzero(pred.grad[0]) > 0


# ---- masked loss -----------------------------------------------------------------------------


def _masked_folder(root: Path, mask: Image.Image, size: int = 64) -> Path:
    folder = root / "masked"
    folder.mkdir(parents=True)
    Image.new("RGB", (size, size), (180, 60, 30)).save(folder / "cat.png")
    (folder / "cat.txt").write_text("a cat")
    mask.save(folder / "cat_mask.png")
    return folder


def _one_step(tmp_path: Path, folder: Path) -> tuple[Any, Any, torch.Tensor, dict[str, Any]]:
    """One training step of the demo model's LoRA on `folder` as the loop makes it:
    (noised, pred, loss, adapter parameters by name), after backward."""
    from trainer.data import build_train_data, collate, weigh_samples
    from trainer.families import family_for
    from trainer.run_config import RunConfig

    raw = fast(tmp_path / "run", datasets=[_entry(folder, mask_source="file")], seed=3)
    cfg = RunConfig(effective(raw))
    family = family_for(cfg["model_family"])
    model = family.load(cfg, family.resolve_path(cfg))
    trained = model.setup_training(torch.device("cpu"), torch.float32)
    entries = [RunConfig(e) for e in cfg["datasets"]]
    data = build_train_data(entries, 64, 1, 3, False, warn=lambda _m: None)
    batch = collate([data.dataset[item] for item in next(iter(data.sampler))])
    torch.manual_seed(0)
    with torch.no_grad():
        latents = model.vae.encode(batch["pixel_values"]).latent_dist.mean
    latents = model.scale_latents(latents)
    noised = model.add_noise(latents, batch)
    weigh_samples(noised, batch, 1.0, 1.0)
    with torch.no_grad():
        embeds = model.encode_prompts(model.text_encoders, batch["captions"])
    pred = model.predict(trained[0], noised, embeds, batch)
    pred.retain_grad()
    loss = model.loss(pred, noised)
    loss.backward()
    adapters = {n: p for n, p in trained[0].named_parameters() if "lora" in n}
    assert adapters
    return noised, pred, loss, adapters


@pytest.mark.slow
def test_a_black_mask_gives_the_adapters_no_gradient(tmp_path: Path) -> None:
    folder = _masked_folder(tmp_path, Image.new("L", (64, 64), 0))
    noised, _, loss, adapters = _one_step(tmp_path, folder)
    assert noised.mask is not None and float(noised.mask.max()) == 0.0
    assert float(loss) == 0.0
    assert all(p.grad is None or torch.count_nonzero(p.grad) == 0 for p in adapters.values())


@pytest.mark.slow
def test_a_half_mask_trains_only_its_half(tmp_path: Path) -> None:
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))  # the left half trains
    folder = _masked_folder(tmp_path, mask)
    noised, pred, loss, adapters = _one_step(tmp_path, folder)
    m = noised.mask
    assert m is not None and m.shape[-2:] == pred.shape[-2:]
    half = pred.shape[-1] // 2
    assert torch.all(m[..., :half] == 1) and torch.all(m[..., half:] == 0)
    expected = ((pred.detach() - noised.target) ** 2 * m).mean()
    assert torch.allclose(loss.detach(), expected, rtol=1e-5)
    assert pred.grad is not None
    assert torch.count_nonzero(pred.grad[..., half:]) == 0
    assert torch.count_nonzero(pred.grad[..., :half]) > 0
    assert any(p.grad is not None and torch.count_nonzero(p.grad) > 0 for p in adapters.values())


def test_flow_loss_masks_elementwise_like_the_ddpm_loss() -> None:
    from trainer.families.base import Noised
    from trainer.families.flow import flow_loss

    torch.manual_seed(0)
    target = torch.randn(2, 16, 4, 4)
    pred = torch.randn(2, 16, 4, 4, requires_grad=True)
    mask = torch.zeros(2, 1, 4, 4)
    mask[..., :2, :] = 1.0  # the top half
    noised = Noised(
        noisy=target,
        timesteps=torch.tensor([100.0, 500.0]),
        target=target,
        weights=torch.tensor([1.0, 0.5]),
        mask=mask,
        extra={"sigmas": torch.tensor([0.1, 0.5])},
    )
    loss = flow_loss(pred, noised, loss_type="l2", huber_schedule="constant", huber_c=0.1)
    per = ((pred - target) ** 2 * mask).mean(dim=(1, 2, 3)) * torch.tensor([1.0, 0.5])
    assert torch.allclose(loss, per.mean())
    loss.backward()
    assert pred.grad is not None and torch.count_nonzero(pred.grad[..., 2:, :]) == 0


def test_a_mask_of_another_size_is_resized_with_a_counted_warning(tmp_path: Path) -> None:
    from trainer.data import ImageCaptionDataset, scan_entry
    from trainer.run_config import RunConfig

    small = Image.new("L", (16, 16), 0)
    small.paste(255, (0, 0, 8, 16))  # left half, at a quarter of the image's size
    folder = _masked_folder(tmp_path, small)
    Image.new("RGB", (64, 64)).save(folder / "dog.png")  # no mask: trains unmasked
    cfg = effective(fast(tmp_path / "run", datasets=[_entry(folder, mask_source="file")]))
    entry = RunConfig(cfg["datasets"][0])
    warnings: list[str] = []
    records = scan_entry(entry, 0, 64, warnings.append)
    assert [r.path.name for r in records] == ["cat.png", "dog.png"]  # cat_mask.png is no image
    assert any("1 mask(s) differ in size" in w for w in warnings), warnings
    assert any("1 image(s) have no mask file" in w for w in warnings), warnings
    dataset = ImageCaptionDataset(records, [entry], 64)
    item = dataset[(0, 0)]
    assert item["mask"].shape == (1, 64, 64)
    assert float(item["mask"][0, :, :30].min()) == 1.0 and float(item["mask"][0, :, 34:].max()) == 0
    assert dataset[(1, 0)]["mask"] is None
