"""Datasets tab: the keys of one `[[datasets]]` entry (a folder of images and captions)."""

from __future__ import annotations

from functools import partial

from registry.catalogue._rules import only_if, when
from registry.field import Choice, ConfigField, FieldType, Importance, Op, Scope

TAB = "datasets"
SECTIONS = ("Images", "Captions", "Sampling", "Bucketing and cropping", "Augmentation")

_field = partial(ConfigField, tab=TAB, scope=Scope.DATASET)
_bucketing = when("bucketing", Op.TRUTHY)

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
        name="path",
        type=FieldType.PATH,
        default="",
        section="Images",
        importance=Importance.ESSENTIAL,
        label="Image folder",
        help="Folder of training images (.png, .jpg, .jpeg, .webp, .bmp), searched "
        "recursively. Captions sit next to the images (see caption_source).",
        placeholder="/data/my-character",
        widget="folder",
        width=6,
    ),
    _field(
        name="caption_source",
        type=FieldType.CHOICE,
        default="sidecar",
        section="Captions",
        importance=Importance.ESSENTIAL,
        label="Captions from",
        choices=(
            Choice(
                value="sidecar",
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
        ),
        help="Where each image's caption comes from. Images without a caption file train on an "
        "empty caption (plus the prefix).",
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
        dependencies=(only_if("caption_source", "sidecar"),),
        width=4,
    ),
    _field(
        name="instance_prompt",
        type=FieldType.STR,
        default="",
        section="Captions",
        importance=Importance.ESSENTIAL,
        help="The caption used for every image, typically a rare trigger word plus a class: "
        "'a photo of sks dog'.",
        placeholder="a photo of sks dog",
        dependencies=(only_if("caption_source", "instance_prompt"),),
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
        help="Keep the first N comma-separated tags in place when shuffling (e.g. 1 keeps the "
        "trigger word first).",
        dependencies=(when("shuffle_caption", Op.TRUTHY),),
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
