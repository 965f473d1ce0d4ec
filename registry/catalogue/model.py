"""Model tab: which base model to start from and how it is fine-tuned (LoRA or full)."""

from __future__ import annotations

from functools import partial

from registry.catalogue._rules import DDPM_FAMILIES, all_of, only_if, when
from registry.field import Choice, ConfigField, FieldType, Importance, Op

TAB = "model"
SECTIONS = (
    "Base model",
    "Fine-tune method",
    "LoRA",
    "Text encoder",
    "Noise prediction",
    "SDXL",
    "Flow matching",
)

_field = partial(ConfigField, tab=TAB)
_not_demo = when(
    "model_family",
    Op.NOT_EQUALS,
    "demo",
    reason="not used by the built-in demo model (choose another model_family)",
)
_lora = only_if("model_type", "lora")
_lycoris = all_of(_lora, only_if("lora_type", "lycoris"))
# Options of peft's LoraConfig that LoHa / LoKr adapters have no counterpart for.
_standard_lora = all_of(
    _lora,
    when("lora_type", Op.NOT_EQUALS, "lycoris"),
    reason="a standard-LoRA option: LyCORIS (LoHa / LoKr) adapters have none (lora_type)",
)

FIELDS: tuple[ConfigField, ...] = (
    _field(
        name="model_family",
        type=FieldType.CHOICE,
        default="demo",
        section="Base model",
        importance=Importance.ESSENTIAL,
        label="Model family",
        choices=(
            Choice(
                value="demo",
                label="Demo (tiny built-in model)",
                help="A tiny SD-style pipeline generated locally; trains in seconds on a CPU. "
                "Use it to try the UI; it draws blobs, not pictures.",
            ),
            Choice(
                value="sd1x",
                label="Stable Diffusion 1.x",
                help="SD 1.4 / 1.5 and their fine-tunes (512 px).",
            ),
            Choice(
                value="sd2x",
                label="Stable Diffusion 2.x",
                help="SD 2.0 / 2.1 (768 px models usually use v-prediction).",
            ),
            Choice(
                value="sdxl",
                label="Stable Diffusion XL",
                help="SDXL 1.0 base and its fine-tunes (1024 px, two text encoders).",
            ),
            Choice(
                value="flux",
                label="Flux.1 (dev or schnell)",
                help="FLUX.1 dev and schnell and their fine-tunes (1024 px, CLIP + T5, flow "
                "matching); dev or schnell is read from the model itself.",
            ),
            Choice(
                value="sd3",
                label="Stable Diffusion 3 / 3.5",
                help="SD 3 medium and SD 3.5 medium / large (1024 px, two CLIPs + T5, flow "
                "matching).",
            ),
        ),
        help="The architecture of the base model. It decides which text encoders, noise "
        "conditioning and defaults are used, so it must match the checkpoint you load.",
        hint="Pick 'demo' to try everything without downloading a model.",
        width=4,
    ),
    _field(
        name="pretrained_model_name_or_path",
        type=FieldType.PATH,
        default="",
        section="Base model",
        importance=Importance.ESSENTIAL,
        label="Base model",
        help="A local diffusers folder (with model_index.json), a Hugging Face Hub id such as "
        "'stable-diffusion-v1-5/stable-diffusion-v1-5', or for SD 1.x / 2.x / SDXL one "
        ".safetensors checkpoint as model sites share them (its family is read from the file "
        "and must match model_family). A Hub id is taken from your local Hugging Face cache "
        "when it is there, otherwise downloaded. Pickle .ckpt files need "
        "allow_pickle_checkpoints.",
        placeholder="stabilityai/stable-diffusion-xl-base-1.0 or /models/my-sdxl.safetensors",
        dependencies=(_not_demo,),
        widget="model_file",
        width=8,
    ),
    _field(
        name="revision",
        type=FieldType.STR,
        default="",
        section="Base model",
        importance=Importance.EXPERT,
        help="Hub branch, tag or commit of the base model to load. Empty means the default "
        "branch (main). Ignored for local folders.",
        placeholder="main",
        dependencies=(_not_demo,),
        width=4,
    ),
    _field(
        name="variant",
        type=FieldType.STR,
        default="",
        section="Base model",
        importance=Importance.ADVANCED,
        help="Weight file variant to load, e.g. 'fp16' to read the *.fp16.safetensors files a "
        "repository ships (smaller, faster to load). Empty loads the full-precision files.",
        placeholder="fp16",
        dependencies=(_not_demo,),
        width=4,
    ),
    _field(
        name="pretrained_vae_model_name_or_path",
        type=FieldType.PATH,
        default="",
        section="Base model",
        importance=Importance.ADVANCED,
        label="Replacement VAE",
        help="Load the VAE from another diffusers VAE folder (with config.json), Hub id or "
        "single .safetensors VAE file instead of the base model's. The usual case is SDXL with "
        "'madebyollin/sdxl-vae-fp16-fix', whose VAE does not overflow in fp16. Empty keeps the "
        "base model's VAE.",
        placeholder="madebyollin/sdxl-vae-fp16-fix",
        dependencies=(_not_demo,),
        widget="folder",
        width=8,
    ),
    _field(
        name="single_file_config",
        type=FieldType.PATH,
        default="",
        section="Base model",
        importance=Importance.EXPERT,
        label="Single-file layout from",
        help="A single-file checkpoint holds weights only: the configs of its parts, its "
        "tokenizers and its scheduler come from this diffusers folder or Hub id of the same "
        "architecture. Empty uses the family's reference model (SD 1.5, SD 2.1 or SDXL base) "
        "from the local Hugging Face cache; nothing is downloaded.",
        placeholder="/models/sdxl-base-diffusers",
        model_families=("sd1x", "sd2x", "sdxl"),
        dependencies=(_not_demo,),
        widget="folder",
        width=8,
    ),
    _field(
        name="allow_pickle_checkpoints",
        type=FieldType.BOOL,
        default=False,
        section="Base model",
        importance=Importance.EXPERT,
        label="Allow pickle checkpoints",
        help="Let the base model or VAE be a pickled .ckpt / .pt / .bin file. Loading a pickle "
        "runs any code it contains, so only turn this on for files from a source you trust; "
        "converting the file to .safetensors once is the safer choice.",
        model_families=("sd1x", "sd2x", "sdxl"),
        dependencies=(_not_demo,),
        width=4,
    ),
    _field(
        name="model_type",
        type=FieldType.CHOICE,
        default="lora",
        section="Fine-tune method",
        importance=Importance.ESSENTIAL,
        label="Training type",
        choices=(
            Choice(
                value="lora",
                label="LoRA",
                help="Train small low-rank adapters; the base weights stay frozen. Fast, "
                "little memory, small files.",
            ),
            Choice(
                value="full",
                label="Full fine-tune",
                help="Train every UNet weight. Needs far more memory and produces a whole model.",
            ),
        ),
        help="LoRA trains small adapter matrices next to the frozen model (a few MB, loadable "
        "with diffusers' load_lora_weights); a full fine-tune updates every UNet weight and "
        "saves a complete diffusers model.",
        width=4,
    ),
    _field(
        name="lora_type",
        type=FieldType.CHOICE,
        default="standard",
        section="LoRA",
        importance=Importance.COMMON,
        label="LoRA type",
        choices=(
            Choice(
                value="standard",
                label="Standard LoRA",
                help="Low-rank matrices B @ A next to each target layer (peft LoRA).",
            ),
            Choice(
                value="lycoris",
                label="LyCORIS",
                help="LyCORIS adapters (LoHa or LoKr, see lycoris_algo): more expressive per "
                "parameter than a LoRA of the same rank. Saved as a kohya-style LyCORIS file "
                "that ComfyUI and Forge/A1111 load.",
            ),
        ),
        help="Which kind of adapter to train. LyCORIS adapters use lora_rank, lora_alpha and "
        "lora_target_modules like a LoRA; DoRA, rsLoRA, lora_init and lora_dropout are "
        "standard-LoRA options.",
        dependencies=(_lora,),
        width=3,
    ),
    _field(
        name="lycoris_algo",
        type=FieldType.CHOICE,
        default="lokr",
        section="LoRA",
        importance=Importance.COMMON,
        label="LyCORIS algorithm",
        choices=(
            Choice(
                value="loha",
                label="LoHa",
                help="Hadamard product of two low-rank products: (W1a @ W1b) * (W2a @ W2b). "
                "A full-rank update from two rank-r pairs; about twice a LoRA's size.",
            ),
            Choice(
                value="lokr",
                label="LoKr",
                help="Kronecker product of a small and a larger matrix (each optionally low "
                "rank): very small files, good for styles and characters.",
            ),
        ),
        help="The LyCORIS algorithm (peft's LoHa or LoKr adapters). The scale is lora_alpha "
        "/ lora_rank, as for a LoRA.",
        dependencies=(_lycoris,),
        width=3,
    ),
    _field(
        name="lokr_factor",
        type=FieldType.INT,
        default=-1,
        section="LoRA",
        importance=Importance.ADVANCED,
        label="LoKr factor",
        minimum=-1,
        maximum=4096,
        help="Size of the small Kronecker factor of each LoKr layer: each dimension is split "
        "as factor x (dimension / factor) where it divides. -1 picks the split closest to a "
        "square root (the largest update); larger factors make the second matrix smaller. "
        "0 is not allowed.",
        hint="'factor' in LyCORIS / SimpleTuner lycoris configs.",
        dependencies=(all_of(_lycoris, only_if("lycoris_algo", "lokr")),),
        width=3,
    ),
    _field(
        name="lokr_decompose_both",
        type=FieldType.BOOL,
        default=False,
        section="LoRA",
        importance=Importance.EXPERT,
        label="LoKr: decompose both",
        help="Also store the small Kronecker factor as a rank-r product (it is a full matrix "
        "otherwise). Fewer parameters for large factors; the rank is lora_rank.",
        dependencies=(all_of(_lycoris, only_if("lycoris_algo", "lokr")),),
        width=3,
    ),
    _field(
        name="lora_rank",
        type=FieldType.INT,
        default=4,
        section="LoRA",
        importance=Importance.ESSENTIAL,
        label="LoRA rank",
        minimum=1,
        maximum=1024,
        help="Inner dimension (r) of each LoRA adapter. Higher ranks learn more detail and make "
        "bigger files; 4-32 suits most styles and characters, 64-128 for complex concepts.",
        hint="Also called 'network dim' in kohya.",
        dependencies=(_lora,),
        width=3,
    ),
    _field(
        name="lora_alpha",
        type=FieldType.FLOAT,
        default=4.0,
        section="LoRA",
        importance=Importance.COMMON,
        label="LoRA alpha",
        minimum=0.0,
        maximum=4096.0,
        help="Scaling of the adapter's output: the update is multiplied by alpha / rank. Alpha "
        "equal to the rank gives a scale of 1; half the rank halves the effective learning rate.",
        hint="Also called 'network alpha' in kohya.",
        dependencies=(_lora,),
        width=3,
    ),
    _field(
        name="lora_dropout",
        type=FieldType.FLOAT,
        default=0.0,
        section="LoRA",
        importance=Importance.ADVANCED,
        label="LoRA dropout",
        minimum=0.0,
        maximum=1.0,
        exclusive_maximum=True,
        help="Dropout probability applied to the adapter's input during training. A little "
        "(0.05-0.1) can reduce overfitting on small datasets; 0 turns it off.",
        dependencies=(_standard_lora,),
        widget="slider",
        width=3,
    ),
    _field(
        name="lora_target_modules",
        type=FieldType.MULTI_CHOICE,
        default=["to_q", "to_k", "to_v", "to_out.0"],
        section="LoRA",
        importance=Importance.ADVANCED,
        label="Target modules",
        choices=(
            Choice(value="to_q", help="Attention query projections."),
            Choice(value="to_k", help="Attention key projections."),
            Choice(value="to_v", help="Attention value projections."),
            Choice(value="to_out.0", help="Attention output projections."),
            Choice(value="proj_in", help="Transformer block input projections."),
            Choice(value="proj_out", help="Transformer block output projections."),
            Choice(value="ff.net.0.proj", help="Feed-forward input (GEGLU) layers."),
            Choice(value="ff.net.2", help="Feed-forward output layers."),
            Choice(value="conv1", help="First convolution of each ResNet block."),
            Choice(value="conv2", help="Second convolution of each ResNet block."),
            Choice(value="time_emb_proj", help="Timestep-embedding projections of ResNet blocks."),
        ),
        help="Which UNet layers get adapters. The default (attention q/k/v/out) matches "
        "diffusers' LoRA scripts; adding feed-forward and convolution layers (like LoCon / "
        "LyCORIS) learns more but makes the file larger.",
        dependencies=(_lora,),
        width=6,
    ),
    _field(
        name="lora_init",
        type=FieldType.CHOICE,
        default="default",
        section="LoRA",
        importance=Importance.EXPERT,
        label="LoRA init",
        choices=(
            Choice(
                value="default",
                label="Default (Kaiming, B = 0)",
                help="peft's standard init: the adapter starts as a no-op.",
            ),
            Choice(
                value="gaussian",
                label="Gaussian",
                help="A scaled by 1/rank Gaussian; B still zero.",
            ),
            Choice(
                value="pissa",
                label="PiSSA",
                help="Starts from the principal singular vectors of the weight; converges faster but initialisation takes a while. Linear layers only. The saved file is a plain LoRA of twice the rank (so it applies to the original base model), twice the size.",
            ),
        ),
        help="How the adapter weights start (peft's init_lora_weights). Leave at default unless "
        "you are experimenting.",
        dependencies=(_standard_lora,),
        width=3,
    ),
    _field(
        name="init_lora",
        type=FieldType.PATH,
        default="",
        section="LoRA",
        importance=Importance.ADVANCED,
        label="Continue from LoRA",
        help="Start from an existing LoRA .safetensors file (diffusers or ComfyUI/kohya layout) "
        "instead of fresh adapters: training continues from its weights. Its rank and target "
        "layers must match lora_rank and lora_target_modules; a mismatch is reported before "
        "training starts. A LyCORIS (LoHa / LoKr) file continues with lora_type lycoris and "
        "the same lycoris_algo.",
        placeholder="/loras/my-style.safetensors",
        model_families=("demo", "sd1x", "sd2x", "sdxl"),
        dependencies=(_lora,),
        widget="model_file",
        width=8,
    ),
    _field(
        name="use_rslora",
        type=FieldType.BOOL,
        default=False,
        section="LoRA",
        importance=Importance.EXPERT,
        label="Rank-stabilised LoRA",
        help="Scale adapters by alpha / sqrt(rank) instead of alpha / rank (rsLoRA), which keeps "
        "high ranks from learning too slowly.",
        dependencies=(_standard_lora,),
        width=3,
    ),
    _field(
        name="use_dora",
        type=FieldType.BOOL,
        default=False,
        section="LoRA",
        importance=Importance.EXPERT,
        label="DoRA",
        help="Weight-decomposed LoRA: learns a magnitude and a direction separately. Often a bit "
        "better at low ranks, but slower per step and uses more memory.",
        dependencies=(_standard_lora,),
        width=3,
    ),
    _field(
        name="train_text_encoder",
        type=FieldType.BOOL,
        default=False,
        section="Text encoder",
        importance=Importance.COMMON,
        label="Train text encoder",
        help="Also train the text encoder(s): with LoRA, adapters are added to them; with a full "
        "fine-tune, their weights are unfrozen. Helps the model learn new words (trigger "
        "tokens) but overfits quickly and costs memory.",
        width=4,
    ),
    _field(
        name="text_encoder_lora_rank",
        type=FieldType.INT,
        default=4,
        section="Text encoder",
        importance=Importance.ADVANCED,
        label="Text encoder LoRA rank",
        minimum=1,
        maximum=1024,
        help="Rank of the adapters placed on the text encoder(s). Usually equal to or lower than "
        "the UNet rank.",
        dependencies=(all_of(_lora, when("train_text_encoder", Op.TRUTHY)),),
        width=4,
    ),
    _field(
        name="prediction_type",
        type=FieldType.CHOICE,
        default="auto",
        section="Noise prediction",
        importance=Importance.ADVANCED,
        model_families=DDPM_FAMILIES,  # flow-matching models predict a velocity, always
        choices=(
            Choice(
                value="auto",
                label="Auto (from the model)",
                help="Use the prediction type in the model's scheduler config.",
            ),
            Choice(
                value="epsilon",
                label="Epsilon (noise)",
                help="Predict the added noise: SD 1.x, SD 2.x base (512), SDXL.",
            ),
            Choice(
                value="v_prediction",
                label="V-prediction",
                help="Predict velocity: SD 2.x 768 models and v-pred fine-tunes.",
            ),
        ),
        help="What the UNet learns to predict. Must match how the base model was trained; 'auto' "
        "reads it from the model's scheduler config and is right unless you are converting a "
        "model to another objective.",
        width=4,
    ),
    _field(
        name="sdxl_original_size_conditioning",
        type=FieldType.BOOL,
        default=True,
        section="SDXL",
        importance=Importance.EXPERT,
        label="Original-size conditioning",
        help="Pass each image's original size (before bucketing/resizing) to SDXL's size "
        "conditioning, as in SDXL's own training. Off uses the target size, which tells the "
        "model every image was shot at training resolution.",
        model_families=("sdxl",),
        width=6,
    ),
    _field(
        name="sdxl_crop_conditioning",
        type=FieldType.BOOL,
        default=True,
        section="SDXL",
        importance=Importance.EXPERT,
        label="Crop conditioning",
        help="Pass the crop's top-left corner to SDXL's crop conditioning so the model learns "
        "what cropped images look like. Off always passes (0, 0), as if nothing was cropped.",
        model_families=("sdxl",),
        width=6,
    ),
)
