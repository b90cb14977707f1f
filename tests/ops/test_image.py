"""`make image` pins the stack to the digest it pushed, so a rebuilt tag still rolls out.

`pulumi` and `gcloud` are played by scripts first on PATH: they log each command and
answer as the real ones do (the digest from `gcloud artifacts docker images describe`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.stack import REPO

REPOSITORY = "asia-east2-docker.pkg.dev/my-project/wcg-dev"
DIGEST_1 = "sha256:" + "1" * 64
DIGEST_2 = "sha256:" + "2" * 64

FAKE_PULUMI = """#!/bin/sh
echo "pulumi $*" >> "$FAKE_LOG"
[ "$1" = --stack ] && shift 2
case "$*" in
  "stack output image_repository")
    [ -n "$FAKE_REPOSITORY" ] || { echo "error: no output named image_repository" >&2; exit 255; }
    echo "$FAKE_REPOSITORY" ;;
  "config get gcp:project") echo my-project ;;
  "config set image "*) echo "$4" > "$FAKE_IMAGE" ;;
  *) echo "unexpected: pulumi $*" >&2; exit 2 ;;
esac
"""
FAKE_GCLOUD = """#!/bin/sh
echo "gcloud $*" >> "$FAKE_LOG"
case "$1 $2" in
  "builds submit") [ -z "$FAKE_BUILD_FAILS" ] || { echo "ERROR: build failed" >&2; exit 1; } ;;
  "artifacts docker")
    printf '{"image_summary": {"digest": "%s", "registry": "asia-east2-docker.pkg.dev"}}' \
      "$FAKE_DIGEST" ;;
  *) echo "unexpected: gcloud $*" >&2; exit 2 ;;
esac
"""


@pytest.fixture
def clouds(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, script in (("pulumi", FAKE_PULUMI), ("gcloud", FAKE_GCLOUD)):
        path = bin_dir / name
        path.write_text(script)
        path.chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_LOG": str(tmp_path / "calls.log"),
        "FAKE_IMAGE": str(tmp_path / "image"),
        "FAKE_REPOSITORY": REPOSITORY,
        "FAKE_DIGEST": DIGEST_1,
    }


def make_image(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "image", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_stack_is_pinned_to_the_pushed_digest(clouds: dict[str, str], tmp_path: Path) -> None:
    done = make_image(clouds, "IMAGE_TAG=v1")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "image").read_text().strip() == f"{REPOSITORY}/gateway@{DIGEST_1}"
    assert f"image set to {REPOSITORY}/gateway@{DIGEST_1}; now run: make deploy" in done.stdout
    calls = (tmp_path / "calls.log").read_text()
    assert f"gcloud builds submit --project my-project --tag {REPOSITORY}/gateway:v1 ." in calls
    assert f"gcloud artifacts docker images describe {REPOSITORY}/gateway:v1" in calls


def test_the_same_tag_built_again_still_rolls_out(clouds: dict[str, str], tmp_path: Path) -> None:
    """`git describe --dirty` names every build of a dirty tree alike: by tag, the second
    `make deploy` would have changed nothing."""
    assert make_image(clouds, "IMAGE_TAG=v1-dirty").returncode == 0
    first = (tmp_path / "image").read_text()
    assert make_image({**clouds, "FAKE_DIGEST": DIGEST_2}, "IMAGE_TAG=v1-dirty").returncode == 0
    second = (tmp_path / "image").read_text()
    assert first != second and second.strip().endswith(DIGEST_2)


def test_without_a_tag_each_build_has_its_own(clouds: dict[str, str], tmp_path: Path) -> None:
    assert make_image(clouds).returncode == 0
    (submit,) = [
        line for line in (tmp_path / "calls.log").read_text().splitlines() if "submit" in line
    ]
    tag = submit.split(f"{REPOSITORY}/gateway:")[1].split()[0]
    # git's name for the tree, then the build's UTC time.
    assert len(tag.rsplit("-", 1)[1]) == 14 and tag.rsplit("-", 1)[1].isdigit()


def test_before_the_first_deploy_it_says_what_to_run(
    clouds: dict[str, str], tmp_path: Path
) -> None:
    done = make_image({**clouds, "FAKE_REPOSITORY": ""})
    assert done.returncode != 0
    assert "run 'make deploy' once first" in done.stderr
    assert not (tmp_path / "image").exists()


def test_a_failed_build_sets_nothing(clouds: dict[str, str], tmp_path: Path) -> None:
    done = make_image({**clouds, "FAKE_BUILD_FAILS": "1"})
    assert done.returncode != 0
    assert "gcloud builds submit" in done.stderr
    assert not (tmp_path / "image").exists()


def test_a_missing_cli_is_named(clouds: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "bin" / "gcloud").unlink()
    done = subprocess.run(
        [sys.executable, "-m", "ops.image"],
        cwd=REPO,
        # Only the fake pulumi: no gcloud, whatever this machine has installed.
        env={**clouds, "PATH": str(tmp_path / "bin")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "gcloud is not installed" in done.stderr


def test_an_unexpected_describe_answer_is_refused() -> None:
    from ops.image import ImageError, pushed_digest

    assert pushed_digest(json.dumps({"image_summary": {"digest": DIGEST_1}})) == DIGEST_1
    for answer in ("", "{}", json.dumps({"image_summary": {"digest": "latest"}})):
        with pytest.raises(ImageError):
            pushed_digest(answer)
