"""The release: a version tag publishes, under the names the action, the GitLab component and the sandbox
image resolver pull, the gate image and every one of Keystone's own sandbox images, tagged with the
package version; a tag that is not the package version is refused (scripts/check-release-tag, run here
for real); GitLab's side releases the component to the CI/CD catalog on the same tags."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from polarity_keystone import PUBLISHED_IMAGES, __version__
from polarity_keystone.sandbox import _images as images

ROOT = Path(__file__).resolve().parents[2]
CHECK = "scripts/check-release-tag"
VERSION = "${{ needs.version.outputs.version }}"


def workflow() -> dict[str, Any]:
    loaded: dict[Any, Any] = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
    loaded["on"] = loaded.pop(True, loaded.get("on"))  # YAML 1.1 reads the key `on` as true
    return loaded


def steps(job: str) -> list[dict[str, Any]]:
    steps_: list[dict[str, Any]] = workflow()["jobs"][job]["steps"]
    return steps_


def shell(template: str, **variables: str) -> str:
    """`template` with the `$NAME` variables given expanded as the workflow's shell would, others kept."""
    return re.sub(r"\$(\w+)", lambda match: variables.get(match[1], match[0]), template)


def test_only_version_tags_trigger_it_and_every_job_waits_for_the_version_check() -> None:
    release = workflow()
    assert release["on"] == {"push": {"tags": ["v*"]}}
    (check,) = [step for step in steps("version") if CHECK in step.get("run", "")]
    assert check["run"] == f'echo "version=$({CHECK} "$GITHUB_REF_NAME")" >> "$GITHUB_OUTPUT"'
    jobs = release["jobs"]
    for name, job in jobs.items():
        needs = job.get("needs", [])
        assert name == "version" or "version" in ([needs] if isinstance(needs, str) else needs), name
    assert release["permissions"] == {"contents": "read", "packages": "write"}


def test_the_gate_image_is_pushed_multi_arch_under_the_name_the_action_and_the_component_pull() -> None:
    (build,) = [step for step in steps("gate-image") if step.get("uses", "").startswith("docker/build-push")]
    assert build["with"]["push"] is True and build["with"]["context"] == "."
    assert set(build["with"]["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    assert build["with"]["tags"] == f"${{{{ env.IMAGES }}}}:{VERSION}"
    assert workflow()["env"]["IMAGES"] == PUBLISHED_IMAGES
    published = f"{PUBLISHED_IMAGES}:{__version__}"
    assert yaml.safe_load((ROOT / "action.yml").read_text())["runs"]["image"] == f"docker://{published}"
    for component in ("gitlab-ci-component.yml", "templates/keystone-gate.yml"):
        header = next(yaml.safe_load_all((ROOT / component).read_text()))
        assert header["spec"]["inputs"]["image"]["default"] == published, component


def test_every_sandbox_image_is_built_by_the_resolver_and_pushed_under_the_name_it_pulls() -> None:
    names = workflow()["env"]["SANDBOX_IMAGES"].split()
    assert sorted(names) == sorted(entry.name for entry in images.DOCKERFILES.iterdir() if entry.is_dir())
    (push,) = [step["run"] for step in steps("sandbox-images") if "docker push" in step.get("run", "")]
    assert "for name in $SANDBOX_IMAGES; do" in push
    assert "ImageResolver(DockerBackend().client).local(sys.argv[1]).ref" in push  # so the labels are set
    pushed = re.findall(r'docker push "([^"]+)"', push)
    assert pushed == ["$IMAGES-$name:$VERSION-$ARCH"]
    (manifest,) = [step["run"] for step in steps("sandbox-manifests") if "imagetools" in step.get("run", "")]
    tag, *sources = re.findall(r'"(\$IMAGES[^"]+)"', manifest)
    architectures = {
        leg["arch"] for leg in workflow()["jobs"]["sandbox-images"]["strategy"]["matrix"]["include"]
    }
    assert sorted(sources) == sorted(shell(pushed[0], ARCH=arch) for arch in architectures)
    for name in names:
        expanded = shell(tag, IMAGES=PUBLISHED_IMAGES, name=name, VERSION=__version__)
        assert expanded == images.published_name(name)
    for job in ("sandbox-images", "sandbox-manifests"):
        assert workflow()["jobs"][job]["env"]["VERSION"] == VERSION


@pytest.fixture
def release_files(tmp_path: Path) -> Path:
    """The files scripts/check-release-tag reads, in a copy of the repository that a test may change."""
    for name in (CHECK, "src/polarity_keystone/_version.py", "pyproject.toml", "action.yml",
                 "gitlab-ci-component.yml", "templates/keystone-gate.yml"):  # fmt: skip
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tmp_path / name)
    return tmp_path


def check(root: Path, tag: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([root / CHECK, tag], capture_output=True, text=True, check=False)


def test_the_check_accepts_the_package_version_and_refuses_any_other_tag(release_files: Path) -> None:
    accepted = check(release_files, f"v{__version__}")
    assert (accepted.returncode, accepted.stdout) == (0, f"{__version__}\n")
    for tag in ("v9.9.9", __version__, f"v{__version__}-rc1"):
        refused = check(release_files, tag)
        assert refused.returncode == 1 and refused.stdout == ""
        assert f"tag {tag} differs from the package version {__version__}" in refused.stderr


def test_the_check_refuses_a_release_whose_action_pulls_another_version(release_files: Path) -> None:
    action = release_files / "action.yml"
    action.write_text(action.read_text().replace(f"keystone:{__version__}", "keystone:0.0.1"))
    refused = check(release_files, f"v{__version__}")
    assert refused.returncode == 1
    assert f"action.yml does not run docker://{PUBLISHED_IMAGES}:{__version__}" in refused.stderr


def test_gitlab_releases_the_component_to_the_catalog_on_the_same_checked_tags() -> None:
    pipeline = yaml.safe_load((ROOT / ".gitlab-ci.yml").read_text())
    job = pipeline["release"]
    assert job["script"] == [f'{CHECK} "$CI_COMMIT_TAG"']
    assert job["release"]["tag_name"] == "$CI_COMMIT_TAG"
    for rules in (pipeline["workflow"]["rules"], job["rules"]):
        ((condition,),) = [list(rule.values()) for rule in rules]
        pattern = re.fullmatch(r"\$CI_COMMIT_TAG =~ /(.+)/", condition)
        assert pattern is not None, condition
        assert re.fullmatch(pattern[1], f"v{__version__}") and not re.fullmatch(pattern[1], "main")
    assert (ROOT / "templates" / "keystone-gate.yml").is_file()  # what the catalog publishes
