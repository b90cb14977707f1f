"""``make image``: build the gateway's image with Cloud Build and pin the stack to its digest.

The stack's ``image`` is set to ``<repository>/gateway@sha256:<digest>``, never to a tag: a
tag can be built twice (``git describe`` names a dirty tree the same each time), and the
same ``image`` value would roll out nothing. A digest names one image for good, and a new
build always gives a new one to deploy.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGE_NAME = "gateway"
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class ImageError(Exception):
    """What went wrong, and what to do: printed alone, with a non-zero exit."""


def run(argv: Sequence[str], capture: bool = True) -> str:
    try:
        done = subprocess.run(list(argv), cwd=REPO, check=False, text=True, capture_output=capture)
    except FileNotFoundError:
        raise ImageError(f"{argv[0]} is not installed") from None
    if done.returncode != 0:
        said = (done.stderr or "").strip().splitlines()[-3:] if capture else []
        raise ImageError(
            f"'{' '.join(argv[:3])} …' failed (exit {done.returncode})"
            + (":\n  " + "\n  ".join(said) if said else "")
        )
    return (done.stdout or "").strip()


def default_tag() -> str:
    """Readable and never reused: what git says of the tree, and when it was built."""
    try:
        described = run(["git", "describe", "--always", "--dirty"])
    except ImageError:
        described = "build"
    return f"{described}-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}"


def pushed_digest(describe_json: str) -> str:
    """The digest in `gcloud artifacts docker images describe --format json`'s answer."""
    try:
        summary = json.loads(describe_json)["image_summary"]
        digest = summary.get("digest") or summary["fully_qualified_digest"].rpartition("@")[2]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ImageError("Artifact Registry did not say the pushed image's digest") from None
    if not isinstance(digest, str) or not DIGEST.match(digest):
        raise ImageError(f"Artifact Registry answered an unexpected digest {digest!r}")
    return digest


def build_and_pin(stack: str | None, tag: str) -> str:
    for tool, fix in (
        ("pulumi", "install the Pulumi CLI (see README)"),
        ("gcloud", "install the Google Cloud CLI and run 'gcloud auth login'"),
    ):
        if shutil.which(tool) is None:
            raise ImageError(f"{tool} is not installed: {fix}")
    pulumi = ["pulumi", *(["--stack", stack] if stack else [])]
    try:
        repository = run([*pulumi, "stack", "output", "image_repository"])
    except ImageError:
        repository = ""
    if not repository:
        raise ImageError(
            "the stack has no image_repository yet: run 'make deploy' once first (without "
            "'image' it creates the registry, the network and the secrets)"
        )
    project = run([*pulumi, "config", "get", "gcp:project"])
    tagged = f"{repository}/{IMAGE_NAME}:{tag}"
    print(f"building {tagged} with Cloud Build ...", flush=True)
    run(["gcloud", "builds", "submit", "--project", project, "--tag", tagged, "."], capture=False)
    digest = pushed_digest(
        run(
            [
                "gcloud",
                "artifacts",
                "docker",
                "images",
                "describe",
                tagged,
                "--project",
                project,
                "--format",
                "json",
            ]
        )
    )
    pinned = f"{repository}/{IMAGE_NAME}@{digest}"
    run([*pulumi, "config", "set", "image", pinned])
    return pinned


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make image", description=__doc__)
    parser.add_argument("--stack", default=None, help="the Pulumi stack (default: the selected)")
    parser.add_argument("--tag", default=None, help="the tag to push too (default: git + time)")
    args = parser.parse_args(argv)
    try:
        pinned = build_and_pin(args.stack or None, args.tag or default_tag())
    except ImageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"image set to {pinned}; now run: make deploy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
