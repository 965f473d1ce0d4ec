"""`python -m trainer [--config FILE] [--<field> VALUE ...]`: validate, then train.

Parsing and validation import only the registry (no torch), so `--help` and config errors
are instant; so is the check that output_dir is writable and that a checkpoint to resume
from is one. The heavy modules load after that.
"""

from __future__ import annotations

import os
import sys
import uuid


def main(argv: list[str] | None = None) -> int:
    from registry.cli import build_parser, explicit_values
    from registry.config_io import ConfigFileError, load_config_file
    from registry.platform import detect_platform
    from registry.validation import validate_config

    parser = build_parser(prog="python -m trainer")
    run = parser.add_argument_group("run (set by the UI / server)")
    run.add_argument("--callback_url", default=os.environ.get("TUNERDECK_CALLBACK_URL"))
    run.add_argument("--callback_token", default=os.environ.get("TUNERDECK_CALLBACK_TOKEN"))
    run.add_argument("--run_id", default=os.environ.get("TUNERDECK_RUN_ID"))
    args = parser.parse_args(argv)

    raw: dict = {}
    if args.config:
        try:
            raw = load_config_file(args.config)
        except ConfigFileError as exc:
            print(f"error: cannot use config {args.config}:", file=sys.stderr)
            for error in exc.errors:
                print(f"  - {error}", file=sys.stderr)
            return 2
    raw.update(explicit_values(args))
    result = validate_config(raw, detect_platform())
    for issue in result.warnings:
        print(f"warning: {issue.path}: {issue.message}", file=sys.stderr)
    if not result.ok:
        print("error: the configuration is not valid:", file=sys.stderr)
        for issue in result.errors:
            print(f"  - {issue.path}: {issue.message}", file=sys.stderr)
        return 2
    from trainer.checkpoints import preflight

    problem = preflight(result.values["output_dir"], result.values["resume_from_checkpoint"])
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2

    problem = _disk_problem(result.values)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    _write_repro_record(result.values, sys.argv[1:] if argv is None else list(argv))
    from trainer import quiet

    quiet.install()  # before the libraries load: their start-up notices are the noisiest
    from trainer.loop import train
    from trainer.run_config import RunConfig

    run_id = args.run_id or uuid.uuid4().hex[:12]
    return train(
        RunConfig(result.values),
        run_id=run_id,
        callback_url=args.callback_url,
        callback_token=args.callback_token,
    )


def _disk_problem(values: dict) -> str | None:
    """The UI's disk check again, for runs started by hand: refuse early rather than fail at a
    checkpoint hours in. None when there is room (or the free space cannot be read)."""
    import shutil
    from pathlib import Path

    from registry.estimate import GB, count_parameters, run_disk_bytes

    target = Path(values["output_dir"]).expanduser().resolve()
    existing = next((p for p in (target, *target.parents) if p.exists()), Path("/"))
    model = Path(str(values.get("pretrained_model_name_or_path") or "")).expanduser()
    params = count_parameters(model) if str(model) != "." and model.exists() else {}
    needed = run_disk_bytes(values, params)
    try:
        free = shutil.disk_usage(existing).free
    except OSError:
        return None
    if free >= needed:
        return None
    return (
        f"not enough free disk space at {existing}: this run needs about {needed / GB:.1f} GB "
        f"for its checkpoints and weights, {free / GB:.1f} GB are free. Free some space, set "
        "checkpoints_total_limit or a larger checkpointing_steps, or choose another output_dir."
    )


def _write_repro_record(values: dict, argv: list[str]) -> None:
    """RUN_DIR/reproducibility.json (once: by the first process of a multi-process launch)."""
    if os.environ.get("RANK", "0") != "0":
        return
    from pathlib import Path

    from tunerdeck_common.repro import build_record, write_record

    try:
        write_record(Path(values["output_dir"]).expanduser().resolve(), build_record(values, argv))
    except OSError as exc:  # the run itself reports an unwritable folder; this is secondary
        print(f"warning: cannot write the reproducibility record: {exc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
