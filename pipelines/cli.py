"""``audiolvm`` console script: one subcommand per pipeline module."""

from __future__ import annotations

import argparse
import logging
import sys

from audiolvm.core.errors import AudiolvmError
from audiolvm_pipelines import (
    convert,
    decode,
    demo,
    encode,
    enroll,
    evaluate,
    evaluate_image,
    evaluate_prior,
    evaluate_vc,
    info,
    lab,
    probe,
    reconstruct,
    report,
    sample,
    train,
    train_classifier,
    train_image,
    train_image_prior,
    train_prior,
)

COMMANDS = {
    "train": train, "reconstruct": reconstruct, "encode": encode, "decode": decode, "evaluate": evaluate,
    "train-prior": train_prior, "sample": sample, "evaluate-prior": evaluate_prior,
    "convert": convert, "enroll": enroll, "train-classifier": train_classifier, "evaluate-vc": evaluate_vc,
    "probe": probe, "train-image": train_image, "train-image-prior": train_image_prior,
    "evaluate-image": evaluate_image, "lab": lab,
    "info": info, "report": report, "demo": demo,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audiolvm",
        description="Latent-variable models of audio: train VQ-VAEs, reconstruct, encode/decode codes, "
                    "evaluate, inspect runs.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of a user error (bad flag, config, file or corpus) too, not only its "
                             "one-line message; other errors always show theirs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        module.add_parser(sub.add_parser(name, help=module.HELP, description=module.__doc__,
                                         formatter_class=argparse.RawDescriptionHelpFormatter))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        logging.getLogger("accelerate").setLevel(logging.WARNING)
    try:
        return int(COMMANDS[args.command].run(args) or 0)
    # the project's own errors (a bad flag, config, file or corpus; a diverged run): one clear line naming the fix,
    # exit code 2 (--debug or -v: the traceback too). Anything else is a bug and keeps its traceback.
    except AudiolvmError as exc:
        if args.verbose or args.debug:
            raise
        print(f"audiolvm {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
