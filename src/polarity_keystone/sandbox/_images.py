"""Image resolution: pull what a spec names, fall back to Keystone's local images, bake `setup`.

Images Keystone builds itself are tagged by the hash of their build context and carry that hash as a
label, so an unchanged Dockerfile is never rebuilt and a changed one always is. Before building one,
the resolver tries the image a release published for this version, and uses it only when its labels
say it was built from the same content (a development checkout must not run stale released images).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import docker
import docker.errors

from .._version import PUBLISHED_IMAGES, __version__
from ..spec import Setup
from ._archive import first_file, tar_files
from ._base import DEFAULT_AGENT, ROOT, AgentUser

LOCAL_REPO = "keystone-local"
SETUP_REPO = "keystone-setup"
CONTEXT_LABEL = "keystone.context-hash"
CONTENT_LABEL = "org.keystone.content-hash"
"""On Keystone's own images: the hash of the build context (what the local tag names), also on the
released ones, so a pulled image is used only where it was built from the same Dockerfile and files."""
VERSION_LABEL = "org.keystone.version"
"""On Keystone's own images: the package version that built them."""

# Canonical public images -> the local image that stands in for them when they cannot be pulled.
_FALLBACKS = {
    "postgres": "postgres",
    "postgis/postgis": "postgres",
    "redis": "redis",
    "ubuntu": "base",
    "debian": "base",
    "python": "base",
    "buildpack-deps": "base",
    "minio/minio": "s3",
    "bitnami/minio": "s3",
    "localstack/localstack": "s3",
    "adobe/s3mock": "s3",
    "motoserver/moto": "s3",
}

WHEELS_FILE = "wheels.txt"
"""A local image whose context has this file gets `wheels/`: the pinned wheels it lists, downloaded on
the host (a build has no HTTPS to PyPI). The tag hashes the file, so nothing is fetched for an image
that already exists."""
WHEELS_PYTHON = "3.11"
"""The CPython the wheels are for: Debian bookworm's python3, the base of every local image."""
_PLATFORMS = {
    "x86_64": ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64"),
    "aarch64": ("manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux_2_28_aarch64"),
}


class ImageError(Exception):
    """Raised when an image can be neither found, pulled, substituted nor built; the engine reports
    it as an infrastructure error of the sandbox, not as an agent failure."""


def published_name(name: str) -> str:
    """The released image of Keystone's local image `name` for this package version."""
    return f"{PUBLISHED_IMAGES}-{name}:{__version__}"


def _report_on_stderr(line: str) -> None:
    print(f"[keystone] {line}", file=sys.stderr, flush=True)


class UnknownUser(ValueError):
    """Raised by `ImageResolver.for_agent` for an `agent.user` name the image does not have; the engine
    turns it into a spec error (invalid input)."""


@dataclass(frozen=True)
class ResolvedImage:
    requested: str
    ref: str
    """What the container is created from."""
    digest: str
    """The image ID (sha256:...), recorded in the run fingerprint."""
    note: str = ""
    """Set when a local image stands in for the requested one; shown in the run output."""


def _repository(ref: str) -> str:
    name = ref.split("@", 1)[0]
    if ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[0]
    return name.removeprefix("docker.io/").removeprefix("library/")


def _hash_tree(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()


def download_wheels(
    requirements: bytes, architecture: str, *, python: str = WHEELS_PYTHON, dependencies: bool = False
) -> dict[str, bytes]:
    """`wheels/<file>` for every requirement (one a line), binary wheels for CPython `python` (X.Y) on
    `architecture` (x86_64 or aarch64), fetched with the host's pip; with `dependencies` pip resolves
    and fetches theirs too, else the list must be complete."""
    platforms = _PLATFORMS.get({"amd64": "x86_64", "arm64": "aarch64"}.get(architecture, architecture))
    if platforms is None:
        raise ImageError(f"no wheels for the engine's architecture {architecture!r} (x86_64 or aarch64)")
    with tempfile.TemporaryDirectory(prefix="keystone-wheels-") as folder:
        listing = Path(folder) / WHEELS_FILE
        listing.write_bytes(requirements)
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:"]
        command += [] if dependencies else ["--no-deps"]
        command += ["--python-version", python, "--implementation", "cp"]
        for platform in (*platforms, "any"):
            command += ["--platform", platform]
        command += ["-d", str(Path(folder) / "wheels"), "-r", str(listing)]
        try:
            subprocess.run(command, check=True, capture_output=True, text=True, timeout=900)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            output = str(getattr(exc, "stderr", "") or getattr(exc, "output", "") or exc)
            wanted = ", ".join(line.strip() for line in requirements.decode().splitlines() if line.strip())
            raise ImageError(f"pip could not download the wheels of {wanted}: {output[-4000:]}") from exc
        return {
            f"wheels/{path.name}": path.read_bytes() for path in sorted((Path(folder) / "wheels").iterdir())
        }


def _project(requirement: str) -> str:
    """The normalized project name of a requirement such as `Psycopg[binary]==3.2.10`."""
    return re.sub(r"[-_.]+", "-", re.split(r"[\[=<>!~;\s]", requirement, maxsplit=1)[0]).lower()


def _pip_install(requirements: list[str]) -> list[str]:
    """Dockerfile lines installing `requirements` from the downloaded `wheels/`, with no index and no pip
    in the image: pip runs from its own wheel. The wheels' layer stays (the classic builder cannot mount
    them), but the RUN leaves no copy of them in the file system."""
    install = (
        'set -- /tmp/wheels/pip-*.whl && python3 "$1/pip" install --no-index --find-links /tmp/wheels '
        "--break-system-packages --no-cache-dir --disable-pip-version-check --root-user-action=ignore "
        + " ".join(shlex.quote(requirement) for requirement in requirements)
        + " && rm -rf /tmp/wheels"
    )
    return ["COPY wheels /tmp/wheels", f"RUN {json.dumps(['sh', '-c', install])}"]


DOCKERFILES = resources.files("polarity_keystone.sandbox") / "dockerfiles"
"""The build context of each of Keystone's own images, one folder per image name."""


def _local_context(name: str, dockerfiles: Traversable = DOCKERFILES) -> dict[str, bytes]:
    folder = dockerfiles / name
    return {entry.name: entry.read_bytes() for entry in folder.iterdir() if entry.is_file()}


def local_ref(name: str, dockerfiles: Traversable = DOCKERFILES) -> str:
    """The tag of Keystone's own image `name`: named by the content it is built from."""
    return f"{LOCAL_REPO}/{name}:{_hash_tree(_local_context(name, dockerfiles))[:16]}"


class ImageResolver:
    """Resolves and builds images for one Docker engine; safe to share between threads."""

    def __init__(
        self,
        client: docker.DockerClient,
        *,
        allow_pull: bool = True,
        answering: Mapping[str, str] | None = None,
        progress: Callable[[str], None] = _report_on_stderr,
        dockerfiles: Traversable = DOCKERFILES,
    ) -> None:
        """`answering`: refs answered by other local images as a registry would answer them, never by a
        stand-in (e.g. a python-less minimal image as `ubuntu:24.04`, to run a spec on what a hosted
        runner pulls, without a registry and without retagging images other users of the engine share).
        `progress` gets a line before and after each image of Keystone's own that is built (they take
        minutes);
        `dockerfiles` holds their build contexts."""
        self._client = client
        self._allow_pull = allow_pull
        self._progress = progress
        self._dockerfiles = dockerfiles
        self._answering = dict(answering or {})
        self._lock = threading.Lock()
        self._resolved: dict[str, ResolvedImage] = {}

    @property
    def client(self) -> docker.DockerClient:
        """The engine this resolver builds on, also asked what it can enforce (runtimes, disk quotas)."""
        return self._client

    def resolve(self, ref: str) -> ResolvedImage:
        with self._lock:
            if ref not in self._resolved:
                self._resolved[ref] = self._resolve(ref)
            return self._resolved[ref]

    def local(self, name: str) -> ResolvedImage:
        """Keystone's own image `name` (postgres, redis, base): present, else the released image of this
        version built from the same content, else built here."""
        context = _local_context(name, self._dockerfiles)
        tag = local_ref(name, self._dockerfiles)
        content = tag.rsplit(":", 1)[1]
        present = self._present(tag)
        if present is not None:
            return ResolvedImage(requested=tag, ref=tag, digest=str(present.id))
        released, why = self._released(name, content, tag)
        if released is not None:
            return ResolvedImage(requested=tag, ref=tag, digest=str(released.id))
        extra: Callable[[], dict[str, bytes]] | None = None
        if WHEELS_FILE in context:
            requirements = context[WHEELS_FILE]
            extra = lambda: download_wheels(requirements, self._architecture())  # noqa: E731
        started = time.monotonic()
        labels = {CONTENT_LABEL: content, VERSION_LABEL: __version__}
        self._progress(f"building {tag} ({why}) ...")
        digest = self._build(tag, context, extra, labels)
        self._progress(f"built {tag} in {time.monotonic() - started:.1f} s")
        return ResolvedImage(requested=tag, ref=tag, digest=digest)

    def _released(self, name: str, content: str, tag: str) -> tuple[docker.models.images.Image | None, str]:
        """The image a release published for `name`, present or pulled, tagged `tag` when its labels say
        it was built from `content` by this version; else None and why it cannot be used."""
        ref = published_name(name)
        image = self._present(ref)
        if image is None and not self._allow_pull:
            return None, f"{ref} is not present and pulling is off"
        if image is None:
            try:
                image = self._client.images.pull(ref)
            except docker.errors.APIError as exc:
                return None, f"{ref} could not be pulled: {getattr(exc, 'explanation', None) or exc}"
        labels = image.labels or {}
        if labels.get(CONTENT_LABEL) != content or labels.get(VERSION_LABEL) != __version__:
            return None, f"{ref} was built from other content than this checkout's"
        repository, version = tag.rsplit(":", 1)
        image.tag(repository, version)
        return image, ""

    def _architecture(self) -> str:
        return str(self._client.info().get("Architecture", "x86_64"))

    def bake_setup(self, base: ResolvedImage, setup: Setup) -> ResolvedImage:
        """The base image with `setup.packages`, `setup.files`, `setup.pip` and `setup.commands` baked in,
        in that order, built once per distinct setup (and base image) instead of once per sandbox."""
        if not (setup.packages or setup.commands or setup.files or setup.pip):
            return base
        lines = [f"FROM {base.ref}", "USER root", "WORKDIR /workspace"]
        files: dict[str, bytes] = {}
        if setup.packages:
            packages = " ".join(sorted(set(setup.packages)))
            lines.append(
                "RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "
                f"--no-install-recommends {packages} && rm -rf /var/lib/apt/lists/*"
            )
        for index, item in enumerate(setup.files):
            files[f"file-{index}"] = item.content.encode()
            lines.append(f"COPY file-{index} {json.dumps(item.path)}")
            lines.append(f"RUN chmod {item.mode:o} {json.dumps(item.path)}")
        wheels: Callable[[], dict[str, bytes]] | None = None
        if setup.pip:
            base = self._derive(base, lines, files)
            lines = [f"FROM {base.ref}", "USER root", "WORKDIR /workspace", *_pip_install(setup.pip)]
            files = {}
            wheels = self._wheels_for(base, setup.pip)
        lines.extend(f"RUN {json.dumps(['sh', '-c', command])}" for command in setup.commands)
        return self._derive(base, lines, files, wheels)

    def _wheels_for(self, image: ResolvedImage, requirements: list[str]) -> Callable[[], dict[str, bytes]]:
        """The download of `requirements` (dependencies resolved) and of pip itself for `image`'s python3,
        run only when the image that installs them is built. Its tag need not hash the Python version:
        `image`'s digest, which it hashes, fixes that version."""
        wanted = requirements if any(_project(r) == "pip" for r in requirements) else [*requirements, "pip"]

        def download() -> dict[str, bytes]:
            python = self._python_version(image)
            listing = "".join(f"{requirement}\n" for requirement in wanted).encode()
            return download_wheels(listing, self._architecture(), python=python, dependencies=True)

        return download

    def _python_version(self, image: ResolvedImage) -> str:
        """X.Y of `image`'s python3, asked in a throwaway container; ImageError when it has none."""
        code = "import sys; print('%d.%d' % sys.version_info[:2])"
        container = self._client.containers.create(
            image.ref, ["-c", code], entrypoint=["python3"], user="root", network_disabled=True
        )
        try:
            container.start()
            status = container.wait(timeout=120).get("StatusCode")
            version = bytes(container.logs(stdout=True, stderr=False)).decode(errors="replace").strip()
        except docker.errors.APIError:  # no python3 to start
            status, version = None, ""
        finally:
            container.remove(force=True)
        if status != 0 or not re.fullmatch(r"3\.[0-9]+", version):
            raise ImageError("setup.pip needs python3 in the image: add python3 to setup.packages")
        return version

    def for_agent(self, image: ResolvedImage, user: str | None) -> tuple[ResolvedImage, AgentUser]:
        """`image` prepared for the agent user (`agent.user`; None is Keystone's unprivileged `agent`):
        a layer, built once per image and user, that creates the default user, and gives the user
        /workspace and its home. Raises UnknownUser for a name the image does not know."""
        if user in ("root", "0", "0:0"):
            return image, ROOT
        agent = DEFAULT_AGENT if user is None else self._lookup_user(image, user)
        owner = agent.exec_user
        script = f"mkdir -p /workspace {agent.home} && chown -R {owner} /workspace {agent.home}"
        if user is None:
            entry = f"agent:x:{owner}:Keystone agent:{agent.home}:/bin/sh"
            script = (
                f"(grep -q '^agent:' /etc/passwd || echo '{entry}' >> /etc/passwd) && "
                f"(grep -q '^agent:' /etc/group || echo 'agent:x:{agent.gid}:' >> /etc/group) && {script}"
            )
        return self._derive(image, [f"FROM {image.ref}", "USER root", f"RUN {script}"], {}), agent

    def _lookup_user(self, image: ResolvedImage, user: str) -> AgentUser:
        """uid, gid and home of `user` (a name, or uid[:gid]) from the image's /etc/passwd."""
        name, _, group = user.partition(":")
        entries = [line.split(":") for line in self._read(image, "/etc/passwd").splitlines()]
        entry = next((e for e in entries if len(e) >= 6 and name in (e[0], e[2])), None)
        if entry is None and not name.isdigit():
            raise UnknownUser(
                f"agent.user {user!r} is not a user of image {image.requested} (no /etc/passwd entry); "
                "create it in setup.commands (e.g. `useradd -m NAME`), or give a numeric uid[:gid]"
            )
        uid = int(entry[2]) if entry else int(name)
        gid = int(group) if group else int(entry[3]) if entry else uid
        home = entry[5] if entry and entry[5] not in ("", "/") else f"/home/{uid}"
        return AgentUser(uid, gid, home)

    def _read(self, image: ResolvedImage, path: str) -> str:
        """A file of `image`, read from a created (never started) container; empty when absent."""
        container = self._client.containers.create(image.ref, ["true"])
        try:
            chunks, _ = container.get_archive(path)
            return first_file(chunks).decode("utf-8", errors="replace")
        except docker.errors.NotFound:
            return ""
        finally:
            container.remove(force=True)

    def add_local_files(self, base: ResolvedImage, source: str, paths: dict[str, str]) -> ResolvedImage:
        """`base` with files of Keystone's local image `source` copied in (its path -> the path in the new
        image), modes kept: a layer built once per base, so sandboxes get the files at no boot cost."""
        local = self.local(source)
        lines = [f"FROM {base.ref}"]
        lines += [f"COPY --from={local.ref} {json.dumps([src, dest])}" for src, dest in sorted(paths.items())]
        return self._derive(base, lines, {})  # the source's tag, in `lines`, names its content

    def _derive(
        self,
        base: ResolvedImage,
        lines: list[str],
        files: dict[str, bytes],
        extra: Callable[[], dict[str, bytes]] | None = None,
    ) -> ResolvedImage:
        """An image built on `base` from Dockerfile `lines` and context `files`, tagged by their hash;
        `extra` as in `_build`."""
        files = {**files, "Dockerfile": ("\n".join(lines) + "\n").encode()}
        tag = f"{SETUP_REPO}:{_hash_tree({**files, 'base': base.digest.encode()})[:16]}"
        return ResolvedImage(
            requested=base.requested, ref=tag, digest=self._build(tag, files, extra), note=base.note
        )

    def _resolve(self, ref: str) -> ResolvedImage:
        answer = self._answering.get(ref, ref)
        image = self._present(answer)
        if image is None and self._allow_pull and answer == ref:
            try:
                image = self._client.images.pull(ref)
            except docker.errors.APIError:
                image = None
        if image is not None:
            return ResolvedImage(requested=ref, ref=answer, digest=str(image.id))
        if answer != ref:
            raise ImageError(f"image {answer!r}, which answers to {ref!r} here, is not present")
        fallback = _FALLBACKS.get(_repository(ref).split(":")[0])
        if fallback is None:
            raise ImageError(
                f"image {ref!r} is not present and could not be pulled; pull or build it first "
                f"(docker pull {ref}), or use one of the images Keystone can stand in for: "
                + ", ".join(sorted(_FALLBACKS))
            )
        local = self.local(fallback)
        note = f"{ref} cannot be pulled here; using Keystone's local image {local.ref} in its place"
        return ResolvedImage(requested=ref, ref=local.ref, digest=local.digest, note=note)

    def _present(self, ref: str) -> docker.models.images.Image | None:
        try:
            return self._client.images.get(ref)
        except docker.errors.ImageNotFound:
            return None

    def _build(
        self,
        tag: str,
        context: dict[str, bytes],
        extra: Callable[[], dict[str, bytes]] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> str:
        """Build `context` as `tag` unless that image exists; `extra` adds files (downloaded wheels) to
        the context only when a build actually happens, and is not part of the tag."""
        existing = self._present(tag)
        if existing is not None:
            return str(existing.id)
        if extra is not None:
            context = {**context, **extra()}
        try:
            image, _ = self._client.images.build(
                fileobj=io.BytesIO(tar_files(context, {n: 0o755 for n in context if n.endswith(".sh")})),
                custom_context=True,
                tag=tag,
                rm=True,
                forcerm=True,
                labels={CONTEXT_LABEL: tag.rsplit(":", 1)[1], "keystone.managed": "true", **(labels or {})},
            )
        except (docker.errors.BuildError, docker.errors.APIError) as exc:
            log = "".join(str(chunk.get("stream", "")) for chunk in getattr(exc, "build_log", []) or [])
            raise ImageError(f"building {tag} failed: {exc}\n{log[-4000:]}") from exc
        return str(image.id)
