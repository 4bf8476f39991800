"""What the demo's stages share: a command's arguments built by the command's own parser."""

from __future__ import annotations

import argparse
from types import ModuleType


def parsed(module: ModuleType, *argv: object) -> argparse.Namespace:
    """``module``'s arguments parsed from ``argv`` (each passed through ``str``) by its own ``add_parser``, so
    every option the command has gets its default and none can be missed when the command gains one."""
    parser = argparse.ArgumentParser(prog=module.__name__.rsplit(".", 1)[-1])
    module.add_parser(parser)
    return parser.parse_args([str(a) for a in argv])
