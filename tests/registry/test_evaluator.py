"""The day-one dependency rules a user meets, as the evaluator reports them."""

from __future__ import annotations

import pytest

from registry.evaluator import Evaluator, FieldState, PlatformContext, changed, evaluate
from registry.field import Scope

CPU = PlatformContext("cpu")
MPS = PlatformContext("mps")
CUDA = PlatformContext(
    "cuda",
    frozenset({"bitsandbytes", "xformers", "transformer_engine", "schedulefree", "came_pytorch"}),
)
CUDA_BARE = PlatformContext("cuda")

OPTIMIZER_PARAMS = {
    "adamw": ["adam_beta1", "adam_beta2", "adam_weight_decay", "adam_epsilon", "adam_amsgrad"],
    "adamw8bit": ["adam_beta1", "adam_beta2", "adam_weight_decay", "adam_epsilon"],
    "adafactor": [
        "adafactor_relative_step",
        "adafactor_scale_parameter",
        "adafactor_warmup_init",
        "adafactor_decay_rate",
        "adafactor_clip_threshold",
        "adafactor_weight_decay",
    ],
    "prodigy": [
        "prodigy_d0",
        "prodigy_d_coef",
        "prodigy_beta1",
        "prodigy_beta2",
        "prodigy_beta3",
        "prodigy_weight_decay",
        "prodigy_use_bias_correction",
        "prodigy_safeguard_warmup",
        "prodigy_decouple",
    ],
    "lion": ["lion_beta1", "lion_beta2", "lion_weight_decay"],
    "lion8bit": ["lion_beta1", "lion_beta2", "lion_weight_decay"],
    "adamw_schedulefree": [
        "schedulefree_beta1",
        "schedulefree_beta2",
        "schedulefree_weight_decay",
        "schedulefree_warmup_steps",
        "schedulefree_epsilon",
    ],
    "came": [
        "came_beta1",
        "came_beta2",
        "came_beta3",
        "came_weight_decay",
        "came_epsilon1",
        "came_epsilon2",
    ],
    "sgd": ["sgd_momentum", "sgd_nesterov", "sgd_weight_decay"],
}
ALL_OPTIMIZER_PARAMS = {p for params in OPTIMIZER_PARAMS.values() for p in params}


def shown(states: dict[str, FieldState]) -> set[str]:
    return {name for name, s in states.items() if s.visible}


@pytest.mark.parametrize("optimizer", list(OPTIMIZER_PARAMS))
def test_each_optimizer_shows_only_its_own_parameters(optimizer: str) -> None:
    states = evaluate({"optimizer": optimizer}, CUDA)
    visible_params = shown(states) & ALL_OPTIMIZER_PARAMS
    assert visible_params == set(OPTIMIZER_PARAMS[optimizer])


def test_hidden_optimizer_parameter_says_which_optimizer_it_needs() -> None:
    states = evaluate({"optimizer": "lion"}, CPU)
    assert states["adam_beta1"].reason == "shown only when optimizer is adamw or adamw8bit"
    assert states["prodigy_d0"].reason == "shown only when optimizer is prodigy"
    assert states["adam_beta1"].enabled is False


def test_adafactor_warmup_init_is_greyed_out_until_relative_step() -> None:
    off = evaluate({"optimizer": "adafactor"}, CPU)["adafactor_warmup_init"]
    assert off.visible and not off.enabled
    assert "adafactor_relative_step is on" in (off.reason or "")
    on = evaluate({"optimizer": "adafactor", "adafactor_relative_step": True}, CPU)
    assert on["adafactor_warmup_init"].active


SCHEDULER_PARAMS = {
    "constant": set(),
    "constant_with_warmup": {"lr_warmup_steps"},
    "linear": {"lr_warmup_steps"},
    "cosine": {"lr_warmup_steps"},
    "cosine_with_restarts": {"lr_warmup_steps", "lr_num_cycles"},
    "polynomial": {"lr_warmup_steps", "lr_power", "lr_end"},
}


@pytest.mark.parametrize("scheduler", list(SCHEDULER_PARAMS))
def test_each_scheduler_shows_only_its_parameters_and_warmup_where_used(scheduler: str) -> None:
    states = evaluate({"lr_scheduler": scheduler}, CPU)
    params = {"lr_warmup_steps", "lr_num_cycles", "lr_power", "lr_end"}
    assert shown(states) & params == SCHEDULER_PARAMS[scheduler]


def test_warmup_reason_names_the_schedulers_that_use_it() -> None:
    reason = evaluate({}, CPU)["lr_warmup_steps"].reason or ""
    assert reason.startswith("shown only when lr_scheduler is constant_with_warmup")
    assert "cosine" in reason


LORA_FIELDS = {
    "lora_rank",
    "lora_alpha",
    "lora_dropout",
    "lora_target_modules",
    "lora_init",
    "use_rslora",
    "use_dora",
}


def test_lora_fields_only_for_lora() -> None:
    assert shown(evaluate({"model_type": "lora"}, CPU)) >= LORA_FIELDS
    full = evaluate({"model_type": "full"}, CPU)
    assert not (LORA_FIELDS & shown(full))
    assert full["lora_rank"].reason == "shown only when model_type is lora"


def test_text_encoder_fields_follow_train_text_encoder() -> None:
    off = evaluate({}, CPU)
    assert not off["text_encoder_lr"].visible
    assert off["text_encoder_lr"].reason == "shown only when train_text_encoder is on"
    on = evaluate({"train_text_encoder": True}, CPU)
    assert on["text_encoder_lr"].active
    assert on["text_encoder_lora_rank"].active
    full = evaluate({"train_text_encoder": True, "model_type": "full"}, CPU)
    assert full["text_encoder_lr"].active
    assert not full["text_encoder_lora_rank"].visible  # no adapters on a full fine-tune


def test_cache_text_embeddings_greyed_out_while_text_encoder_trains() -> None:
    state = evaluate({"train_text_encoder": True}, CPU)["cache_text_embeddings"]
    assert state.visible and not state.enabled
    assert "train_text_encoder" in (state.reason or "")


def test_ema_decay_only_with_ema_and_hidden_with_its_hidden_controller() -> None:
    lora = evaluate({"use_ema": True}, CPU)  # use_ema itself is hidden for LoRA
    assert not lora["use_ema"].visible
    assert not lora["ema_decay"].visible
    assert lora["ema_decay"].reason == "shown only when model_type is full"
    full_off = evaluate({"model_type": "full"}, CPU)
    assert full_off["use_ema"].active
    assert not full_off["ema_decay"].visible
    assert "use_ema is on" in (full_off["ema_decay"].reason or "")
    full_on = evaluate({"model_type": "full", "use_ema": True}, CPU)
    assert full_on["ema_decay"].active and full_on["ema_update_after_step"].active


def test_num_train_epochs_only_when_steps_are_zero() -> None:
    assert not evaluate({"max_train_steps": 10}, CPU)["num_train_epochs"].visible
    assert evaluate({"max_train_steps": 0}, CPU)["num_train_epochs"].active


@pytest.mark.parametrize("name", ["huber_c", "huber_schedule"])
def test_huber_settings_only_for_huber_losses(name: str) -> None:
    assert not evaluate({}, CPU)[name].visible
    assert evaluate({"loss_type": "smooth_l1"}, CPU)[name].active
    assert evaluate({"loss_type": "huber"}, CPU)[name].active


@pytest.mark.parametrize("name", ["dynamo_mode", "dynamo_use_fullgraph", "dynamo_use_dynamic"])
def test_dynamo_extras_greyed_out_until_a_backend_is_chosen(name: str) -> None:
    off = evaluate({}, CPU)[name]
    assert off.visible and not off.enabled
    assert off.reason == "enabled once a dynamo_backend is chosen"
    assert evaluate({"dynamo_backend": "inductor"}, CPU)[name].active


@pytest.mark.parametrize(
    ("report_to", "expected"),
    [
        ("none", set()),
        ("tensorboard", {"logging_dir", "tracker_project_name"}),
        ("wandb", {"tracker_project_name", "wandb_entity", "wandb_mode"}),
    ],
)
def test_tracker_fields_only_for_their_tracker(report_to: str, expected: set[str]) -> None:
    tracker = {"logging_dir", "tracker_project_name", "wandb_entity", "wandb_mode"}
    assert shown(evaluate({"report_to": report_to}, CUDA)) & tracker == expected


def test_validation_settings_greyed_out_when_validation_is_off() -> None:
    states = evaluate({"validation_steps": 0}, CPU)
    for name in ("validation_prompt", "num_validation_images", "validation_seed"):
        assert states[name].visible and not states[name].enabled
        assert states[name].reason == "validation is off (validation_steps is 0)"
    assert states["validation_steps"].active


def test_multi_machine_fields_and_the_any_group_for_the_port() -> None:
    single = evaluate({}, CPU)
    assert not single["machine_rank"].visible and not single["main_process_port"].visible
    two_gpus = evaluate({"num_processes": 2}, CPU)
    assert two_gpus["main_process_port"].active and not two_gpus["machine_rank"].visible
    two_machines = evaluate({"num_machines": 2, "num_processes": 2}, CPU)
    for name in ("machine_rank", "main_process_ip", "main_process_port", "rdzv_backend"):
        assert two_machines[name].active


def test_base_model_fields_hidden_for_the_demo_model() -> None:
    demo = evaluate({}, CPU)
    assert not demo["pretrained_model_name_or_path"].visible
    assert "demo" in (demo["pretrained_model_name_or_path"].reason or "")
    assert evaluate({"model_family": "sd1x"}, CPU)["pretrained_model_name_or_path"].active


@pytest.mark.parametrize("family", ["demo", "sd1x", "sd2x"])
def test_sdxl_only_fields_hidden_for_other_families(family: str) -> None:
    state = evaluate({"model_family": family}, CPU)["sdxl_crop_conditioning"]
    assert not state.visible
    assert state.reason == "only for SDXL models"


def test_sdxl_only_fields_shown_for_sdxl() -> None:
    states = evaluate({"model_family": "sdxl"}, CPU)
    assert states["sdxl_crop_conditioning"].active
    assert states["sdxl_original_size_conditioning"].active


@pytest.mark.parametrize("ctx", [CPU, MPS], ids=["cpu", "mps"])
def test_cuda_only_choices_filtered_out_with_a_reason(ctx: PlatformContext) -> None:
    states = evaluate({}, ctx)
    assert "adamw8bit" not in states["optimizer"].choices
    assert states["optimizer"].unavailable_choices["adamw8bit"] == "needs an NVIDIA GPU (CUDA)"
    assert set(states["mixed_precision"].choices) == {"no", "bf16"}
    assert states["mixed_precision"].unavailable_choices == {
        "fp16": "needs an NVIDIA GPU (CUDA)",
        "fp8": "needs an NVIDIA GPU (CUDA)",
    }
    assert "xformers" in states["attention_backend"].unavailable_choices
    assert not states["allow_tf32"].visible
    assert states["allow_tf32"].reason == "needs an NVIDIA GPU (CUDA)"


def test_cuda_offers_everything_when_the_packages_are_installed() -> None:
    states = evaluate({}, CUDA)
    assert "adamw8bit" in states["optimizer"].choices
    assert states["optimizer"].unavailable_choices == {}
    assert set(states["mixed_precision"].choices) == {"no", "fp16", "bf16", "fp8"}
    assert states["allow_tf32"].active


def test_cuda_without_a_package_names_the_package() -> None:
    states = evaluate({}, CUDA_BARE)
    reason = states["optimizer"].unavailable_choices["adamw8bit"]
    assert "bitsandbytes" in reason and "pip install" in reason
    assert "xformers" in states["attention_backend"].unavailable_choices["xformers"]


def test_fp8_is_greyed_out_naming_its_backends_until_one_is_installed() -> None:
    states = evaluate({}, CUDA_BARE)["mixed_precision"]
    assert "fp8" not in states.choices and "fp16" in states.choices
    reason = states.unavailable_choices["fp8"]
    assert "torchao" in reason and "transformer_engine" in reason and "pip install" in reason
    for backend in ("torchao", "transformer_engine"):
        with_one = evaluate({}, PlatformContext("cuda", frozenset({backend})))
        assert "fp8" in with_one["mixed_precision"].choices


def test_platform_detection_looks_for_the_fp8_backends() -> None:
    from registry.catalogue import ALL_FIELDS
    from registry.platform import OPTIONAL_PACKAGES

    needed = {p for f in ALL_FIELDS for c in f.choices for p in c.packages}
    assert needed <= set(OPTIONAL_PACKAGES)


def test_dataset_scope_rules() -> None:
    sidecar = evaluate({}, CPU, Scope.DATASET)
    assert sidecar["caption_extension"].active and not sidecar["instance_prompt"].visible
    assert not sidecar["crop"].visible and sidecar["bucket_step"].active
    assert not sidecar["keep_tokens"].visible
    other = evaluate(
        {"caption_strategy": "instance_prompt", "bucketing": False, "shuffle_caption": True},
        CPU,
        Scope.DATASET,
    )
    assert other["instance_prompt"].active and not other["caption_extension"].visible
    assert other["crop"].active and not other["bucket_step"].visible
    assert other["keep_tokens"].active


def test_changed_reports_only_fields_whose_state_differs() -> None:
    before = evaluate({"optimizer": "adamw"}, CPU)
    after = evaluate({"optimizer": "lion"}, CPU)
    diff = changed(before, after)
    assert set(diff) == set(OPTIMIZER_PARAMS["adamw"]) | set(OPTIMIZER_PARAMS["lion"])
    assert all(diff[name] == after[name] for name in diff)
    assert changed(after, after) == {}


def test_incremental_update_touches_only_dependents() -> None:
    evaluator = Evaluator(CPU)
    config = {"optimizer": "adamw"}
    states = evaluator.evaluate(config)
    config["optimizer"] = "prodigy"
    new, diff = evaluator.update(config, "optimizer", states)
    assert new == evaluator.evaluate(config)
    assert set(diff) == set(OPTIMIZER_PARAMS["adamw"]) | set(OPTIMIZER_PARAMS["prodigy"])
    assert "lora_rank" not in evaluator.dependents("optimizer")
    assert {"use_ema", "ema_decay", "lora_rank"} <= set(evaluator.dependents("model_type"))
    # a field nothing depends on changes nothing
    config["seed"] = 7
    assert evaluator.update(config, "seed", new) == (new, {})


def test_update_without_previous_states_evaluates_everything() -> None:
    evaluator = Evaluator(CPU)
    states, diff = evaluator.update({"model_type": "full"}, "model_type", {})
    assert states == evaluator.evaluate({"model_type": "full"})
    assert diff == states


def test_wrongly_typed_values_do_not_break_evaluation() -> None:
    states = evaluate({"num_machines": "two", "optimizer": ["x"], "max_train_steps": None}, CPU)
    assert not states["machine_rank"].visible
    assert not states["adam_beta1"].visible
