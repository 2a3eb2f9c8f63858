"""``pocketbert bundle``: put a verified artifact, the vocabulary and a bundle manifest into the sample apps."""

from __future__ import annotations

import argparse
from pathlib import Path

from pocketbert.cli.common import comma_list, say


def _run(args: argparse.Namespace) -> int:
    from pocketbert.bundle.bundler import bundle

    for result in bundle(args.output_dir, android=args.android, ios=args.ios, artifacts=args.artifact):
        print(f"{result.platform:8} {result.artifact:14} {result.size_bytes / 1e6:8.1f} MB  {result.directory}")
    say("build the apps as described in apps_sample/android/README.md and apps_sample/ios/README.md")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("bundle", help="copy the right artifact, vocabulary and manifest into the sample apps")
    parser.add_argument("output_dir", type=Path, metavar="OUT", help="a directory written by 'pocketbert export'")
    parser.add_argument(
        "--android", type=Path, default=None, metavar="DIR", help="the Android app (apps_sample/android)"
    )
    parser.add_argument("--ios", type=Path, default=None, metavar="DIR", help="the iOS app (apps_sample/ios)")
    parser.add_argument(
        "--artifact",
        type=comma_list,
        default=None,
        metavar="NAME[,NAME]",
        help="bundle these artifacts instead of the default choice (Android: TFLite int8 > fp32 > ONNX; "
        "iOS: Core ML int8 first); each app takes the first one it can run",
    )
    parser.set_defaults(func=_run)
