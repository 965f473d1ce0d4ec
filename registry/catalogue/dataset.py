"""Datasets tab: the keys of one `[[datasets]]` entry (a folder of images and captions)."""

from __future__ import annotations

from functools import partial

from registry.catalogue._rules import any_of, only_if, when
from registry.field import Choice, ConfigField, FieldType, Importance, Op, Scope

TAB = "datasets"
SECTIONS = (
    "Images",
    "Captions",
    "Sampling",
    "Size filters",
    "Masks",
    "Bucketing and cropping",
    "Augmentation",
)

_field = partial(ConfigField, tab=TAB, scope=Scope.DATASET)
_bucketing = when("bucketing", Op.TRUTHY)
_textfile = only_if("caption_strategy", "textfile", "textfile_or_filename")

FIELDS: tuple[ConfigField, ...] = (
    _field(
        name="name",
        type=FieldType.STR,
        default="",
        section="Images",
        importance=Importance.COMMON,
        help="A label for this dataset in the UI and logs. Empty uses the folder name.",
        placeholder="my-character",
        width=4,
    ),
    _field(
        name="enabled",
        type=FieldType.BOOL,
        default=True,
        section="Images",
        importance=Importance.COMMON,
        help="Include this dataset in training. Turn off to keep an entry without using it.",
        width=2,
    ),
    _field(
        name="kind",
        type=FieldType.CHOICE,
        default="train",
        section="Images",
        importance=Importance.COMMON,
        label="Used for",
        choices=(
            Choice(value="train", label="Training", help="Images the model learns."),
            Choice(
                value="regularization",
                label="Regularization",
                help="Class images (DreamBooth prior preservation): each epoch sees as many of "
                "them as training images, cycled when there are fewer, their loss weighted by "
                "prior_loss_weight.",
            ),
            Choice(
                value="eval",
                label="Evaluation",
                help="Held-out images for the evaluation loss; never in training batches.",
            ),
        ),
        help="What the images are for: training, regularization (prior preservation) or "
        "evaluation only.",
        width=3,
    ),
    _field(
        name="path",
        type=FieldType.PATH,
        default="",
        section="Images",
        importance=Importance.ESSENTIAL,
        label="Image folder",
        help="Folder of training images (.png, .jpg, .jpeg, .webp, .bmp), searched "
        "recursively. Captions sit next to the images (see caption_strategy).",
        placeholder="/data/my-character",
        widget="folder",
        width=6,
    ),
    _field(
        name="caption_strategy",
        aliases=("caption_source",),
        type=FieldType.CHOICE,
        default="textfile",
        section="Captions",
        importance=Importance.ESSENTIAL,
        label="Captions from",
        choices=(
            Choice(
                value="textfile",
                label="Caption files",
                help="A text file per image with the same name, e.g. cat.png + cat.txt.",
            ),
            Choice(
                value="filename",
                label="File names",
                help="The image's file name without extension (underscores and hyphens become spaces).",
            ),
            Choice(
                value="instance_prompt",
                label="One prompt for all",
                help="The same instance_prompt for every image (DreamBooth-style).",
            ),
            Choice(
                value="textfile_or_filename",
                label="Caption file, else file name",
                help="The caption file when there is one, otherwise the file name.",
            ),
        ),
        help="Where each image's caption comes from. Images without a caption file train on an "
        "empty caption (plus the prefix). Configs with the older caption_source key are read "
        "as this one (sidecar means textfile).",
        width=4,
    ),
    _field(
        name="caption_extension",
        type=FieldType.STR,
        default=".txt",
        section="Captions",
        importance=Importance.COMMON,
        pattern=r"\.[A-Za-z0-9_.-]+",
        extra={"pattern_help": "an extension starting with a dot, like .txt"},
        help="Extension of the caption files next to the images, including the dot (.txt, "
        ".caption).",
        dependencies=(_textfile,),
        width=4,
    ),
    _field(
        name="prepend_instance_prompt",
        type=FieldType.BOOL,
        default=False,
        section="Captions",
        importance=Importance.ADVANCED,
        help="Put instance_prompt before every caption (joined with ', '), e.g. a trigger word "
        "in front of file or text captions.",
        dependencies=(when("caption_strategy", Op.NOT_EQUALS, "instance_prompt"),),
        width=4,
    ),
    _field(
        name="instance_prompt",
        type=FieldType.STR,
        default="",
        section="Captions",
        importance=Importance.ESSENTIAL,
        help="The caption used for every image, typically a rare trigger word plus a class: "
        "'a photo of sks dog'; with prepend_instance_prompt, the text put before each caption.",
        placeholder="a photo of sks dog",
        dependencies=(
            any_of(
                only_if("caption_strategy", "instance_prompt"),
                when("prepend_instance_prompt", Op.TRUTHY),
            ),
        ),
        width=8,
    ),
    _field(
        name="caption_prefix",
        type=FieldType.STR,
        default="",
        section="Captions",
        importance=Importance.COMMON,
        help="Text put before every caption, joined with ', ' (e.g. a trigger word such as "
        "'ohwx woman'). Images without a caption train on the prefix alone.",
        width=6,
    ),
    _field(
        name="shuffle_caption",
        type=FieldType.BOOL,
        default=False,
        section="Captions",
        importance=Importance.ADVANCED,
        help="Shuffle comma-separated tags in each caption every time it is used, so the model "
        "does not learn tag order (for booru-style tag captions).",
        width=3,
    ),
    _field(
        name="keep_tokens",
        type=FieldType.INT,
        default=0,
        section="Captions",
        importance=Importance.ADVANCED,
        minimum=0,
        maximum=100,
        help="Keep the first N comma-separated tags in place when shuffling and never drop "
        "them with tag dropout (e.g. 1 keeps the trigger word first).",
        dependencies=(
            any_of(when("shuffle_caption", Op.TRUTHY), when("caption_tag_dropout", Op.GT, 0)),
        ),
        width=3,
    ),
    _field(
        name="caption_dropout_probability",
        type=FieldType.FLOAT,
        default=0.0,
        section="Captions",
        importance=Importance.ADVANCED,
        label="Caption dropout",
        minimum=0.0,
        maximum=1.0,
        help="Chance of training an image with an empty caption, which keeps the model "
        "responsive without a prompt and helps classifier-free guidance. 0.05-0.1 is typical.",
        widget="slider",
        width=6,
    ),
    _field(
        name="caption_tag_dropout",
        type=FieldType.FLOAT,
        default=0.0,
        section="Captions",
        importance=Importance.ADVANCED,
        label="Tag dropout",
        minimum=0.0,
        maximum=1.0,
        help="Chance that each comma-separated tag is left out of a caption each time it is "
        "used (the first keep_tokens tags always stay), so the model does not tie the subject "
        "to every tag. 0.05-0.2 is typical for tag captions.",
        widget="slider",
        width=6,
    ),
    _field(
        name="repeats",
        type=FieldType.INT,
        default=1,
        section="Sampling",
        importance=Importance.COMMON,
        minimum=1,
        maximum=10000,
        help="How many times each image counts per epoch. Use it to balance a small dataset "
        "against a large one.",
        width=3,
    ),
    _field(
        name="eval_split",
        type=FieldType.FLOAT,
        default=0.0,
        section="Sampling",
        importance=Importance.ADVANCED,
        label="Hold out for eval",
        minimum=0.0,
        maximum=100000.0,
        help="Images of this dataset kept out of training to measure the eval loss on (see "
        "eval_steps): a fraction below 1 (0.1 = a tenth of the images, at least one) or a "
        "count of 2 or more images, chosen by the run's seed. 0 holds none out.",
        dependencies=(when("kind", Op.NOT_EQUALS, "eval"),),
        width=3,
    ),
    _field(
        name="minimum_image_size",
        type=FieldType.FLOAT,
        default=0.0,
        section="Size filters",
        importance=Importance.ADVANCED,
        minimum=0.0,
        maximum=100000.0,
        help="Leave out images smaller than this (see resolution_type: the shorter side in "
        "pixels, or megapixels). The scan lists what was left out. 0 keeps every image.",
        width=4,
    ),
    _field(
        name="maximum_image_size",
        type=FieldType.FLOAT,
        default=0.0,
        section="Size filters",
        importance=Importance.ADVANCED,
        minimum=0.0,
        maximum=100000.0,
        help="Leave out images larger than this (see resolution_type). 0: no upper limit.",
        width=4,
    ),
    _field(
        name="resolution_type",
        type=FieldType.CHOICE,
        default="pixel",
        section="Size filters",
        importance=Importance.ADVANCED,
        label="Size measured as",
        choices=(
            Choice(value="pixel", label="Shorter side (px)", help="e.g. 512"),
            Choice(value="area", label="Megapixels", help="width x height / 1,000,000, e.g. 0.25"),
        ),
        help="How minimum_image_size and maximum_image_size measure an image.",
        dependencies=(
            any_of(when("minimum_image_size", Op.GT, 0), when("maximum_image_size", Op.GT, 0)),
        ),
        width=4,
    ),
    _field(
        name="mask_source",
        type=FieldType.CHOICE,
        default="none",
        section="Masks",
        importance=Importance.ADVANCED,
        label="Loss masks",
        choices=(
            Choice(value="none", label="None", help="Every pixel trains."),
            Choice(
                value="file",
                label="Mask files",
                help="A grayscale image per image: cat_mask.png beside cat.png, or masks/cat.png "
                "in a masks subfolder.",
            ),
            Choice(
                value="alpha",
                label="Alpha channel",
                help="The image's own transparency (opaque trains, transparent is ignored).",
            ),
        ),
        help="Masked loss: white areas of the mask train, black areas are ignored (grey is "
        "in between). The mask is cropped, flipped and resized with its image; "
        "masked_loss_probability says how often a batch uses it.",
        width=4,
    ),
    _field(
        name="bucketing",
        type=FieldType.BOOL,
        default=True,
        section="Bucketing and cropping",
        importance=Importance.COMMON,
        label="Aspect-ratio bucketing",
        help="Group images by aspect ratio and train each group at its own size (same pixel "
        "count as resolution), so nothing needs to be cropped away. Off crops every image to a "
        "square.",
        width=4,
    ),
    _field(
        name="bucket_step",
        type=FieldType.INT,
        default=64,
        section="Bucketing and cropping",
        importance=Importance.ADVANCED,
        minimum=8,
        maximum=512,
        multiple_of=8,
        help="Bucket sides are multiples of this many pixels (multiple of 8). Smaller steps "
        "mean more buckets and less cropping.",
        dependencies=(_bucketing,),
        width=4,
    ),
    _field(
        name="max_aspect_ratio",
        type=FieldType.FLOAT,
        default=2.0,
        section="Bucketing and cropping",
        importance=Importance.ADVANCED,
        minimum=1.0,
        maximum=8.0,
        help="Longest side / shortest side allowed for a bucket; more extreme images are "
        "cropped to it.",
        dependencies=(_bucketing,),
        width=4,
    ),
    _field(
        name="crop",
        type=FieldType.CHOICE,
        default="center",
        section="Bucketing and cropping",
        importance=Importance.COMMON,
        choices=(
            Choice(value="center", help="Keep the middle of each image."),
            Choice(value="random", help="A different random crop each time (some augmentation)."),
        ),
        help="How images are cropped to the square training size when bucketing is off.",
        dependencies=(when("bucketing", Op.FALSY),),
        width=4,
    ),
    _field(
        name="random_flip",
        type=FieldType.BOOL,
        default=False,
        section="Augmentation",
        importance=Importance.COMMON,
        label="Random horizontal flip",
        help="Mirror images horizontally at random: doubles the variety for symmetric subjects. "
        "Leave off for text, logos or asymmetric characters.",
        width=4,
    ),
)
