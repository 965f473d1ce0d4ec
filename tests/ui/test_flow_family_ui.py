"""Choosing a flow-matching family on the trainer page shows its fields and hides the SD-only
ones (NiceGUI's simulated browser)."""

from __future__ import annotations

from nicegui.testing import User

from tests.ui.test_trainer_page import choose


async def test_choosing_flux_shows_the_flux_fields_and_hides_the_sd_ones(
    trainer_user: User,
) -> None:
    trainer_user.find(marker="show-advanced").click()  # the flow fields are advanced
    await trainer_user.should_not_see(marker="row-weighting_scheme")  # demo: DDPM
    await trainer_user.should_see(marker="row-prediction_type")
    choose(trainer_user, "field-model_family", "flux")
    for name in ("weighting_scheme", "flow_shift", "flux_guidance_value", "t5_max_length"):
        await trainer_user.should_see(marker=f"row-{name}")
    await trainer_user.should_not_see(marker="row-prediction_type")
    await trainer_user.should_not_see(marker="row-sd3_drop_t5")
    trainer_user.find(marker="tab-training").click()
    await trainer_user.should_not_see(marker="row-snr_gamma")
    await trainer_user.should_not_see(marker="row-noise_offset")
    choose(trainer_user, "field-model_family", "sd3")
    trainer_user.find(marker="tab-model").click()
    await trainer_user.should_see(marker="row-sd3_drop_t5")
    await trainer_user.should_not_see(marker="row-flux_guidance_value")
