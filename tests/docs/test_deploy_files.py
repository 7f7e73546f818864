"""The deployment files under deploy/ say what a user relies on when scaling out on Ray.

Parsed with PyYAML, not run: every worker node offers `keystone_sandbox` and drives a Docker engine of
its own, the head offers none, the server is `ks serve --executor ray` pointed at the head, the nodes load
images from the server's engine, the server and the nodes run one image (Ray refuses mismatched Python or
Ray versions), no password is written out and no engine listens on the network, the Ray image installs
the `ray` extra and the action image (the root Dockerfile) stays without Ray.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from polarity_keystone.sandbox._deny import denied_ranges

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "ray" / "docker-compose.yml"
RAY_DOCKERFILE = DEPLOY / "ray" / "Dockerfile"
RAYCLUSTER = DEPLOY / "kuberay" / "raycluster.yaml"
KEYSTONE_SERVER = DEPLOY / "kuberay" / "keystone-server.yaml"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|STORE_URL", re.I)
_URL_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:(?P<password>[^@\s]+)@", re.I)


def argv(command: str | list[str] | None) -> list[str]:
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def option(args: list[str], name: str) -> str | None:
    """The value of `--name value` or `--name=value` in `args`, else None."""
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def ray_resources(value: str | None, *, shell: bool = False) -> dict[str, float]:
    """`--resources` of `ray start`: JSON as one argument, or (`shell`: KubeRay's rayStartParams, which
    KubeRay writes into a shell command) JSON quoted for a shell."""
    if value is None:
        return {}
    if shell:
        words = shlex.split(value)
        assert len(words) == 1, f"--resources {value!r} is not one word in a shell"
        value = words[0]
    resources = json.loads(value)
    assert isinstance(resources, dict)
    return resources


def strings(node: Any, path: str = "") -> list[tuple[str, str]]:
    """Every string in a YAML document, with where it is."""
    if isinstance(node, dict):
        return [pair for key, value in node.items() for pair in strings(value, f"{path}.{key}")]
    if isinstance(node, list):
        return [pair for index, value in enumerate(node) for pair in strings(value, f"{path}[{index}]")]
    return [(path, node)] if isinstance(node, str) else []


def assert_no_literal_password(documents: list[Any], source: Path) -> None:
    for document in documents:
        for where, value in strings(document):
            for match in _URL_PASSWORD.finditer(value):
                assert match["password"].startswith("${"), f"{source.name}{where}: a password in a URL"


# Docker Compose


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def ray_nodes(services: dict[str, Any]) -> dict[str, list[str]]:
    """The services that run `ray start`, with their command."""
    commands = {name: argv(service.get("command")) for name, service in services.items()}
    return {name: args for name, args in commands.items() if args[:2] == ["ray", "start"]}


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """A service's volumes: where each is mounted -> the volume."""
    return {entry.split(":")[1]: entry.split(":")[0] for entry in service.get("volumes", [])}


def engine_of(services: dict[str, Any], name: str, variable: str = "DOCKER_HOST") -> str:
    """The docker:dind service whose engine the service `name` reaches at its `variable` (DOCKER_HOST,
    KEYSTONE_IMAGE_SOURCE): `tcp://HOST` is the service HOST, `tcp://127.0.0.1` the one whose network
    `name` shares, `unix://PATH` the one listening on that socket in a volume both mount. The engine
    must listen there, and on the network only on its loopback."""
    service = services[name]
    value = (service.get("environment") or {}).get(variable)
    assert value, f"{name} has no {variable}"
    url = urlsplit(value)
    if url.scheme == "unix":
        folder, socket = url.path.rsplit("/", 1)
        volume = mounts(service).get(folder)
        assert volume, f"{name}: {variable} {value} is in no volume"
        found = [
            (other, f"unix://{target}/{socket}")
            for other, candidate in services.items()
            if other != name
            for target, mounted in mounts(candidate).items()
            if mounted == volume
        ]
        assert found, f"{name}: no other service mounts the volume of {value}"
        engine, listen = found[0]
    else:
        assert url.scheme == "tcp", f"{name}: {variable} {value} is neither tcp:// nor unix://"
        if url.hostname in LOOPBACK:
            mode = service.get("network_mode", "")
            assert mode.startswith("service:"), f"{name} reaches 127.0.0.1 but shares no service's network"
            engine = mode.removeprefix("service:")
        else:
            assert url.hostname in services, f"{name}: {variable} {value} names no service"
            engine = str(url.hostname)
        listen = f"tcp://{'127.0.0.1' if url.hostname in LOOPBACK else url.hostname}:{url.port}"
    dind = services[engine]
    assert dind["image"].startswith("docker:") and dind["image"].endswith("dind"), engine
    assert dind.get("privileged") is True, f"{engine}: dind needs privileged"
    listens = [option([arg], "--host") for arg in argv(dind.get("command"))]
    assert listen in listens, f"{engine} does not listen on {listen}"
    open_to_network = [host for host in listens if host and host.startswith("tcp://0.0.0.0")]
    assert not open_to_network, f"{engine}: its API is open to the network"
    return engine


def test_compose_workers_offer_sandboxes_each_on_its_own_engine() -> None:
    services = compose()["services"]
    workers = {name: args for name, args in ray_nodes(services).items() if "--head" not in args}
    assert len(workers) >= 2
    engines = {name: engine_of(services, name) for name in workers}
    for name, args in workers.items():
        assert option(args, "--address") == "head:6379"
        assert ray_resources(option(args, "--resources")).get("keystone_sandbox", 0) > 0, name
    assert len(set(engines.values())) == len(engines), f"workers share an engine: {engines}"
    assert engine_of(services, "server") not in engines.values(), "a worker drives the server's engine"


def test_compose_workers_load_images_from_the_servers_engine() -> None:
    """The server builds the images specs need on its engine; a node lacking one loads it from there."""
    services = compose()["services"]
    server_engine = engine_of(services, "server")
    for name, args in ray_nodes(services).items():
        if "--head" not in args:
            assert engine_of(services, name, "KEYSTONE_IMAGE_SOURCE") == server_engine, name


def test_compose_head_offers_no_sandboxes() -> None:
    services = compose()["services"]
    (head,) = [args for args in ray_nodes(services).values() if "--head" in args]
    assert ray_resources(option(head, "--resources")) == {"keystone_sandbox": 0}
    assert option(head, "--port") == "6379"


def test_compose_server_is_a_ray_driver_of_the_head() -> None:
    services = compose()["services"]
    server = argv(services["server"]["command"])
    assert server[:2] == ["ks", "serve"]
    assert option(server, "--executor") == "ray"
    address = option(server, "--ray-address")
    assert address is not None
    host = urlsplit(address if "://" in address else f"//{address}").hostname
    assert host == "head" and "head" in services
    assert option(server, "--public-url"), "sandboxes on the workers need the server's address"


def test_compose_sandboxes_reach_nothing_on_the_network_but_the_servers_api() -> None:
    """Ray's ports run code on every node: every engine's sandboxes are denied the compose network, but
    for the address and port where the workers' agents call the server (--public-url)."""
    data = compose()
    services = data["services"]
    (subnet,) = [entry["subnet"] for entry in data["networks"]["default"]["ipam"]["config"]]
    server_url = urlsplit(option(argv(services["server"]["command"]), "--public-url") or "")
    server_address = services["dind-server"]["networks"]["default"]["ipv4_address"]
    assert server_url.hostname in services["dind-server"]["networks"]["default"]["aliases"]
    for name in ["server", *(n for n, args in ray_nodes(services).items() if "--head" not in args)]:
        environment = services[name]["environment"]
        denied = denied_ranges(
            environment["KEYSTONE_SANDBOX_DENY"], environment["KEYSTONE_SANDBOX_DENY_EXCEPT"]
        )
        assert [str(network) for network in denied.denied] == [subnet], name
        assert [(str(a), p) for a, p in denied.excepted] == [(server_address, server_url.port)], name


def test_compose_nodes_and_server_run_one_image() -> None:
    services = compose()["services"]
    keystone = [name for name in services if name == "server" or name in ray_nodes(services)]
    assert {services[name]["image"] for name in keystone} == {"keystone-ray:local"}
    assert {services[name]["build"]["dockerfile"] for name in keystone} == {"deploy/ray/Dockerfile"}
    assert (COMPOSE.parent / services["server"]["build"]["context"]).resolve() == ROOT


def test_compose_writes_out_no_password() -> None:
    data = compose()
    assert_no_literal_password([data], COMPOSE)
    for name, service in data["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if _SECRET_NAME.search(key) and "://" not in str(value):
                assert str(value).startswith("${"), f"{name}: {key} is written out"


# KubeRay


def kube(path: Path) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(path.read_text(encoding="utf-8")) if document]


def raycluster() -> dict[str, Any]:
    (cluster,) = [doc for doc in kube(RAYCLUSTER) if doc["kind"] == "RayCluster"]
    assert cluster["apiVersion"] == "ray.io/v1"
    return cluster


def pod_containers(template: dict[str, Any]) -> list[dict[str, Any]]:
    spec = template["spec"]
    return [*spec.get("containers", []), *spec.get("initContainers", [])]


def assert_own_engine(pod: dict[str, Any], container: dict[str, Any]) -> None:
    """`container` drives the Docker engine of a privileged docker:dind sidecar in its pod, on the pod's
    loopback, which the sidecar listens on (and not on the pod's address)."""
    env = {item["name"]: item.get("value") for item in container.get("env", [])}
    docker_host = urlsplit(env["DOCKER_HOST"])
    assert docker_host.scheme == "tcp" and docker_host.hostname in LOOPBACK, "the pod's own engine"
    (dind,) = [c for c in pod_containers(pod) if c["image"].startswith("docker:")]
    assert dind["image"].endswith("dind") and dind["securityContext"]["privileged"] is True
    listens = [option([arg], "--host") for arg in argv(dind.get("args"))]
    assert f"tcp://127.0.0.1:{docker_host.port}" in listens, "dind listens on the pod's loopback"
    assert not [host for host in listens if host and host.startswith("tcp://0.0.0.0")], "open to the network"


def test_kuberay_head_offers_no_sandboxes() -> None:
    head = raycluster()["spec"]["headGroupSpec"]
    assert ray_resources(head["rayStartParams"]["resources"], shell=True) == {"keystone_sandbox": 0}
    ports = {port["containerPort"] for port in head["template"]["spec"]["containers"][0]["ports"]}
    assert {6379, 10001} <= ports


def test_kuberay_workers_offer_sandboxes_on_their_own_engine() -> None:
    groups = raycluster()["spec"]["workerGroupSpecs"]
    assert groups
    for group in groups:
        assert group["groupName"] and group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        assert ray_resources(group["rayStartParams"]["resources"], shell=True).get("keystone_sandbox", 0) > 0
        assert_own_engine(group["template"], group["template"]["spec"]["containers"][0])  # KubeRay's Ray one


def test_kuberay_server_is_a_ray_driver_of_the_head() -> None:
    cluster = raycluster()
    head_service = f"{cluster['metadata']['name']}-head-svc"  # the Service KubeRay makes for the head
    (deployment,) = [doc for doc in kube(KEYSTONE_SERVER) if doc["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    args = [*argv(container.get("command")), *argv(container.get("args"))]
    assert args[:2] == ["ks", "serve"]
    assert_own_engine(pod, container)  # it builds the images the nodes run
    assert option(args, "--executor") == "ray"
    address = option(args, "--ray-address")
    assert address is not None
    host = urlsplit(address if "://" in address else f"//{address}").hostname
    assert host is not None and host.split(".")[0] == head_service
    namespace = cluster["metadata"].get("namespace")
    assert host == head_service or host.split(".")[1] == namespace
    assert deployment["metadata"].get("namespace") == namespace
    images = {
        c["image"]
        for group in [cluster["spec"]["headGroupSpec"], *cluster["spec"]["workerGroupSpecs"]]
        for c in group["template"]["spec"]["containers"][:1]
    }
    assert images == {container["image"]}, "the server and the nodes run one image"
    services = [doc for doc in kube(KEYSTONE_SERVER) if doc["kind"] == "Service"]
    assert any(doc["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"] for doc in services)


def env_vars(node: Any) -> list[dict[str, Any]]:
    """Every container environment variable (`{name, value}` or `{name, valueFrom}`) in a document."""
    if isinstance(node, list):
        return [item for value in node for item in env_vars(value)]
    if not isinstance(node, dict):
        return []
    own = [node] if "name" in node and ({"value", "valueFrom"} & set(node)) else []
    return own + [item for value in node.values() for item in env_vars(value)]


def test_kuberay_store_url_comes_from_a_secret() -> None:
    documents = [*kube(RAYCLUSTER), *kube(KEYSTONE_SERVER)]
    for path in (RAYCLUSTER, KEYSTONE_SERVER):
        assert_no_literal_password(kube(path), path)
    (deployment,) = [doc for doc in documents if doc["kind"] == "Deployment"]
    env = {item["name"]: item for item in env_vars(deployment)}
    assert env["KEYSTONE_STORE_URL"]["valueFrom"]["secretKeyRef"]["key"]
    for item in env_vars(documents):
        if _SECRET_NAME.search(item["name"]):
            assert "secretKeyRef" in item.get("valueFrom", {}), f"{item['name']} is written out"


# Images


def test_the_ray_image_installs_the_ray_extra() -> None:
    text = RAY_DOCKERFILE.read_text(encoding="utf-8")
    runs = " ".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert re.search(r"pip install [^;]*/src\[ray\]", runs), "the package with its ray extra"


def test_the_action_image_stays_without_ray() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert not re.search(r"\bray\b", text, re.I), "the root Dockerfile is the action image: no Ray"


def test_the_docs_name_deploy_files_that_exist() -> None:
    pages = [ROOT / "README.md", ROOT / "docs" / "ray.md", DEPLOY / "README.md"]
    # `deploy/keystone` in a kubectl command is the Deployment, not a path: only these folders count.
    pattern = r"deploy/(?:README\.md|(?:ray|kuberay)\b[\w./-]*\w)"
    named = {match for page in pages for match in re.findall(pattern, page.read_text("utf-8"))}
    assert named, "the docs name no deploy file"
    missing = sorted(path for path in named if not (ROOT / path).exists())
    assert not missing, f"named in the docs but missing: {missing}"
