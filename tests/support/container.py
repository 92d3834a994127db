"""The container image, built once per test run, and its containers run the
way deploy/k8s runs them.

No registry is reachable from CI, so nothing is pulled: the base image is
made here from Debian's packages with mmdebstrap (python3, python3-venv,
ca-certificates, and the machine's own extra CA certificates, as a build
behind a TLS-intercepting proxy needs), kept as a tarball and imported; the
Dockerfile is then built on it with ``BASE_IMAGE``. Builds and containers use
the host's network only, so every connection stays on the loopback interface.

The engine is the one ``DOCKER_HOST`` names (``.ci/run`` starts its own) and
the CLI ``DOCKER`` names, else ``docker`` on the PATH.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parents[2]
K8S = ROOT / "deploy" / "k8s"

HOW_TO_GET_ONE = (
    "no container engine: run `bash .ci/run` (it installs docker.io and mmdebstrap and"
    " starts its own dockerd), or `apt-get install docker.io mmdebstrap`, start dockerd"
    " and export DOCKER_HOST (and DOCKER=/usr/bin/docker if `docker` has no BuildKit)"
)

SUITE = "bookworm"
MIRRORS = (
    f"deb http://deb.debian.org/debian {SUITE} main",
    f"deb http://deb.debian.org/debian {SUITE}-updates main",
    f"deb http://deb.debian.org/debian-security {SUITE}-security main",
)
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
# Where the machine's own trusted CA certificates are (update-ca-certificates
# adds them to the system store): copied into the base at build time, never
# committed.
LOCAL_CAS = Path("/usr/local/share/ca-certificates")
SHM = "/dev/shm"
# What the Dockerfile's build uses from the repository (.dockerignore keeps
# the rest out); its hash names the image, so an unchanged tree is not
# rebuilt by an engine that already has it.
CONTEXT = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "alembic.ini")
CONTEXT_DIRS = ("src", "requirements")


def docker_cli() -> str | None:
    return os.environ.get("DOCKER") or shutil.which("docker")


def docker(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    cli = docker_cli()
    assert cli, HOW_TO_GET_ONE
    # BuildKit: docker.io 20.10's CLI still defaults to the legacy builder,
    # which has no cache mounts.
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    done = subprocess.run(
        [cli, *args], capture_output=True, text=True, timeout=timeout, check=False, env=env
    )
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:3])} failed:\n{done.stderr[-3000:]}")
    return done


def require_engine() -> None:
    """Fails the test, in one line, when no engine answers."""
    cli = docker_cli()
    if cli is None:
        pytest.fail(HOW_TO_GET_ONE, pytrace=False)
    try:
        answered = subprocess.run(
            [cli, "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(HOW_TO_GET_ONE, pytrace=False)
    if answered.returncode != 0 or not answered.stdout.strip():
        pytest.fail(HOW_TO_GET_ONE, pytrace=False)


def _has_image(tag: str) -> bool:
    return docker("image", "inspect", tag, check=False).returncode == 0


def _digest(paths: Iterable[Path], extra: str = "") -> str:
    digest = hashlib.sha256(extra.encode())
    for path in sorted(paths):
        digest.update(str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _local_cas() -> list[Path]:
    return sorted(LOCAL_CAS.rglob("*.crt")) if LOCAL_CAS.is_dir() else []


def cache_dir() -> Path:
    """Where the base tarball is kept: the run's own folder in CI
    (RAG_IMAGE_CACHE, set by .ci/run), else ~/.cache/ragstream/image."""
    configured = os.environ.get("RAG_IMAGE_CACHE")
    folder = Path(configured) if configured else Path.home() / ".cache" / "ragstream" / "image"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class Timings:
    """Seconds spent, for the docs' figures (printed by the tests)."""

    base: float = 0.0
    base_built: bool = False
    image: float = 0.0
    image_built: bool = False
    size: int = 0


TIMINGS = Timings()


def base_image() -> str:
    """A Debian bookworm image with python3, made from Debian's packages."""
    recipe = "\n".join([*MIRRORS, *BASE_PACKAGES, "v1"])
    tag = f"ragstream-base:{SUITE}-{_digest(_local_cas(), recipe)}"
    if _has_image(tag):
        return tag
    started = time.monotonic()
    tarball = cache_dir() / f"{tag.replace(':', '-')}.tar"
    if not tarball.exists():
        _mmdebstrap(tarball)
        TIMINGS.base_built = True
    docker(
        "import",
        "--change",
        "ENV LANG=C.UTF-8",
        "--change",
        'CMD ["python3"]',
        str(tarball),
        tag,
        timeout=300,
    )
    TIMINGS.base = time.monotonic() - started
    return tag


def _mmdebstrap(tarball: Path) -> None:
    if shutil.which("mmdebstrap") is None:
        pytest.fail(HOW_TO_GET_ONE, pytrace=False)
    partial = tarball.with_suffix(".partial.tar")
    hooks = []
    if _local_cas():
        # Hooks run on the host with the new root as $1.
        copies = " ".join(f"'{path}'" for path in _local_cas())
        hooks += [
            f'--customize-hook=cp {copies} "$1/usr/local/share/ca-certificates/"',
            '--customize-hook=chroot "$1" update-ca-certificates',
        ]
    args = [
        "mmdebstrap",
        "--variant=minbase",
        "--quiet",
        f"--include={','.join(BASE_PACKAGES)}",
        '--aptopt=APT::Install-Recommends "false"',
        # Documentation is no use in an image.
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        *hooks,
        SUITE,
        str(partial),
        *MIRRORS,
    ]
    env = dict(os.environ)
    # The chroot in memory: dpkg syncs every file it unpacks, which on this
    # machine's disk took 156 s against 99 s in /dev/shm.
    if os.access(SHM, os.W_OK) and shutil.disk_usage(SHM).free > 2 * 10**9:
        env["TMPDIR"] = SHM
    done = subprocess.run(args, capture_output=True, text=True, timeout=900, check=False, env=env)
    assert done.returncode == 0, f"mmdebstrap failed:\n{done.stderr[-3000:]}"
    partial.rename(tarball)


def _context_files() -> list[Path]:
    files = [ROOT / name for name in CONTEXT]
    for folder in CONTEXT_DIRS:
        files += [
            p for p in (ROOT / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts
        ]
    return files


def app_image() -> str:
    """The Dockerfile built on base_image(), tagged by what went into it."""
    base = base_image()
    tag = f"ragstream:ci-{_digest(_context_files(), base)}"
    if _has_image(tag):
        return tag
    started = time.monotonic()
    proxies = [
        arg
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy")
        if name in os.environ
        for arg in ("--build-arg", name)
    ]
    docker(
        "build",
        "--network",
        "host",
        "--build-arg",
        f"BASE_IMAGE={base}",
        # Every package of the lock has a wheel here: no compiler in CI.
        "--build-arg",
        "BUILD_PACKAGES=",
        *proxies,
        "--tag",
        tag,
        str(ROOT),
        timeout=1200,
    )
    TIMINGS.image = time.monotonic() - started
    TIMINGS.image_built = True
    return tag


def image_size(tag: str) -> int:
    return int(docker("image", "inspect", tag, "--format", "{{.Size}}").stdout)


# --- Running containers as the manifests do --------------------------------


def _documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def configmap() -> dict[str, str]:
    [config] = [d for d in _documents("configmap.yaml") if d["kind"] == "ConfigMap"]
    return {k: str(v) for k, v in config["data"].items()}


@dataclass
class PodSpec:
    """What a manifest asks of one container: command, user, filesystem, env."""

    args: list[str]
    user: str
    read_only: bool
    no_new_privileges: bool
    drop_all: bool
    tmpfs: dict[str, str]  # mount path -> size limit
    claims: dict[str, str]  # mount path -> PersistentVolumeClaim
    env: list[dict[str, Any]]
    env_from: list[dict[str, Any]]


def pod_spec(manifest: str, kind: str) -> PodSpec:
    [workload] = [d for d in _documents(manifest) if d["kind"] == kind]
    pod = workload["spec"]["template"]["spec"]
    [container] = pod["containers"]
    security = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    tmpfs, claims = {}, {}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "emptyDir" in volume:
            tmpfs[mount["mountPath"]] = str(volume["emptyDir"].get("sizeLimit", "64Mi"))
        elif "persistentVolumeClaim" in volume:
            claims[mount["mountPath"]] = volume["persistentVolumeClaim"]["claimName"]
    return PodSpec(
        args=list(container["args"]),
        user=f"{security['runAsUser']}:{security['runAsGroup']}",
        read_only=bool(security.get("readOnlyRootFilesystem")),
        no_new_privileges=security.get("allowPrivilegeEscalation") is False,
        drop_all="ALL" in security.get("capabilities", {}).get("drop", []),
        tmpfs=tmpfs,
        claims=claims,
        env=list(container.get("env", [])),
        env_from=list(container.get("envFrom", [])),
    )


def pod_env(spec: PodSpec, config: Mapping[str, str], secret: Mapping[str, str]) -> dict[str, str]:
    """The environment Kubernetes would give: envFrom in order (the ConfigMap
    ``config``, then the Secret, whose keys win), then env (values, or Secret
    keys)."""
    env: dict[str, str] = {}
    for source in spec.env_from:
        if "configMapRef" in source:
            env.update(config)
        elif "secretRef" in source:
            env.update(secret)
    for var in spec.env:
        if "value" in var:
            env[var["name"]] = str(var["value"])
            continue
        ref = var["valueFrom"]["secretKeyRef"]
        if ref["key"] in secret:
            env[var["name"]] = secret[ref["key"]]
        else:
            assert ref.get("optional"), f"the Secret has no {ref['key']}: the pod would not start"
    return env


def _size(limit: str) -> str:
    """A Kubernetes quantity (64Mi, 2Gi) as docker's tmpfs size (64m, 2g)."""
    return limit.lower().removesuffix("i")


@dataclass
class Container:
    name: str
    started: float = field(default_factory=time.monotonic)

    def logs(self) -> str:
        done = docker("logs", self.name, check=False)
        return done.stdout + done.stderr

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(
            docker("inspect", "--format", "{{json .State}}", self.name).stdout
        )
        return state

    def wait_for_log(self, text: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.logs():
                return
            if not self.state()["Running"]:
                raise RuntimeError(f"{self.name} exited:\n{self.logs()[-3000:]}")
            time.sleep(0.3)
        raise TimeoutError(f"{self.name} never logged {text!r}:\n{self.logs()[-3000:]}")

    def remove(self) -> None:
        docker("rm", "--force", "--volumes", self.name, check=False)


def run_args(spec: PodSpec, env: Mapping[str, str], volumes: Mapping[str, str]) -> list[str]:
    """``docker run`` options for ``spec``: host network, the manifest's user,
    filesystem and privileges; ``volumes`` maps claims to docker volumes."""
    args = ["--network", "host", "--user", spec.user]
    if spec.read_only:
        args.append("--read-only")
    if spec.no_new_privileges:
        args += ["--security-opt", "no-new-privileges"]
    if spec.drop_all:
        args += ["--cap-drop", "ALL"]
    for path, limit in spec.tmpfs.items():
        args += ["--tmpfs", f"{path}:rw,nosuid,nodev,size={_size(limit)}"]
    for path, claim in spec.claims.items():
        # A claim left out is a pod with the volume not needed (the models'
        # check); the deployment maps every one.
        if claim in volumes:
            args += ["--volume", f"{volumes[claim]}:{path}"]
    for name, value in env.items():
        args += ["--env", f"{name}={value}"]
    return args


def run_detached(name: str, image: str, options: list[str], command: list[str]) -> Container:
    docker("run", "--detach", "--name", name, *options, image, *command)
    return Container(name)


def run_once(
    image: str, options: list[str], command: list[str], *, entrypoint: str | None = None
) -> subprocess.CompletedProcess[str]:
    """A container that runs to completion, as a Job's pod does."""
    chosen = ["--entrypoint", entrypoint] if entrypoint else []
    return docker("run", "--rm", *options, *chosen, image, *command, timeout=300, check=False)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
