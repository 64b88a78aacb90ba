"""The deployment, tested for real and offline: every Kubernetes manifest against the Kubernetes schemas,
the base and every overlay rendered by `kubectl kustomize` and checked (schemas, one namespace, what the
pods mount, the image reference, scrape annotations, the NetworkPolicy), checkov on the manifests and
Dockerfiles, then the images built by scripts/image into a throw-away podman store and run on loopback
(the native image answering /validate, as a non-root user on a read-only root, stopping on SIGTERM,
probing itself), the wasm image and the wasm OCI artifact pushed to a registry on 127.0.0.1 and pulled
back byte-identical, and the rendered base (IdP-only: OIDC discovery, no secret) under `podman kube
play` against a key server on 127.0.0.1.

Run with the deploy virtualenv (scripts/setup deploy): `.cache/venv-deploy/bin/python -m unittest
deploy.tests.test_deploy` from the repository root. Every wait is bounded; every container, pod and
process started here is removed by name or PID.
"""

import base64
import contextlib
import http.client
import http.server
import json
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
import tomllib
import unittest
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
CONTAINERS_CONF = os.environ.get("CONTAINERS_CONF", str(ROOT / "deploy/podman/containers.conf"))
# The Kubernetes version whose schemas the manifests must satisfy.
KUBERNETES_VERSION = "1.33"
# Kinds whose schemas are custom resources (no offline schema in kubernetes-validate); the test below
# still parses them and checks their apiVersion.
CUSTOM_KINDS = {
    "HTTPRoute": "gateway.networking.k8s.io/v1",
    "ReferenceGrant": "gateway.networking.k8s.io/v1beta1",
    "SecurityPolicy": "gateway.envoyproxy.io/v1alpha1",
    "SpinApp": "core.spinkube.dev/v1alpha1",
    "AuthorizationPolicy": "security.istio.io/v1",
}
# kubectl with kustomize v5: the machine's, or the one scripts/setup deploy links where it has none.
KUBECTL = str(ROOT / ".cache/bin/kubectl") if (ROOT / ".cache/bin/kubectl").exists() else "kubectl"
SECRET = "deploy-test-secret-0123456789abcdefghijklmnopq"
COMMAND_TIMEOUT = 600  # a build; every other command is far quicker
WAIT = 20.0  # seconds for a container to answer or stop

_store = None  # the throw-away podman store of this run
_images = {}  # "native" | "wasm" | "wasm-artifact" -> reference
# The scripts/image argument that makes each kind.
IMAGE_OF = {
    "native": "native", "wasm": "wasm", "wasm-artifact": "wasm",
    "native-arm64": "native-arm64", "multiarch": "multiarch",
}


def run(*args, timeout=120, check=True, env=None, text=True):
    """Runs a command to completion (bounded); its result (stdout as text unless text=False)."""
    full_env = dict(os.environ, CONTAINERS_CONF=CONTAINERS_CONF, **(env or {}))
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=text, timeout=timeout, env=full_env
    )
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))}: exit {done.returncode}\n{done.stderr[-3000:]!s}")
    return done


def podman(*args, **kw):
    return run("podman", "--root", store() / "root", "--runroot", store() / "runroot", *args, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_request(port, method, path, body=None, timeout=5.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"content-type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_ready(port, path="/readyz"):
    deadline = time.monotonic() + WAIT
    last = None
    while time.monotonic() < deadline:
        try:
            status, _ = http_request(port, "GET", path, timeout=1.0)
            if status == 200:
                return
            last = status
        except OSError as e:
            last = e
        time.sleep(0.05)
    raise AssertionError(f"127.0.0.1:{port}{path} not ready within {WAIT}s (last: {last})")


def validate(port, token):
    status, body = http_request(port, "POST", "/validate", json.dumps({"token": token}).encode())
    return status, json.loads(body)


def tampered(token):
    head, payload, signature = token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    return f"{head}.{payload}.{flipped}"


def store():
    """The throw-away podman store of this run, made the first time a test needs it."""
    global _store
    if _store is None:
        _store = Path(tempfile.mkdtemp(prefix="jwtv-deploy-"))
    return _store


def image(kind):
    """The image of that kind (a key of IMAGE_OF), built by scripts/image into this
    run's store the first time a test needs it, and only it. Not the node baseline's: only the showdown
    uses it, and its Debian root costs minutes to make on a fresh machine."""
    if kind not in _images:
        podman_cmd = f"podman --root {store() / 'root'} --runroot {store() / 'runroot'}"
        out = run(
            ROOT / "scripts/image", IMAGE_OF[kind], timeout=3 * COMMAND_TIMEOUT, env={"PODMAN": podman_cmd}
        ).stdout
        _images.update(line.split(" ", 1) for line in out.splitlines())
    return _images[kind]


def tearDownModule():
    if _store is None:
        return
    podman("pod", "rm", "--all", "--force", check=False)
    podman("rm", "--all", "--force", check=False)
    # Unmount whatever the store still holds, then drop it.
    podman("system", "reset", "--force", check=False)
    shutil.rmtree(_store, ignore_errors=True)


class Manifests(unittest.TestCase):
    def documents(self):
        for path in sorted(KUBE.rglob("*.yaml")):
            if path.name == "kustomization.yaml":
                continue
            for doc in yaml.safe_load_all(path.read_text()):
                if doc:
                    yield path, doc

    def test_every_manifest_is_valid_against_the_kubernetes_schemas(self):
        import kubernetes_validate

        failures = []
        for path, doc in self.documents():
            kind = doc.get("kind")
            if kind in CUSTOM_KINDS:
                if doc.get("apiVersion") != CUSTOM_KINDS[kind]:
                    failures.append(f"{path}: {kind} apiVersion {doc.get('apiVersion')}")
                continue
            # Overlay patches are partial objects: only their shape must match.
            strict = "overlays" not in path.parts or kind == "Namespace"
            try:
                kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as e:
                if strict or "required" not in str(e.message):
                    failures.append(f"{path}: {kind}: {e.message} at {list(e.path)}")
        self.assertEqual(failures, [])

    def test_every_kustomization_names_files_that_exist(self):
        for kustomization in KUBE.rglob("kustomization.yaml"):
            spec = yaml.safe_load(kustomization.read_text())
            named = spec.get("resources", []) + [p["path"] for p in spec.get("patches", []) if "path" in p]
            # A ConfigMap's files are committed; a Secret's are not (overlays/production/secrets).
            named += [f.split("=", 1)[-1] for g in spec.get("configMapGenerator", []) for f in g.get("files", [])]
            for name in named:
                self.assertTrue((kustomization.parent / name).exists(), f"{kustomization}: {name}")

    def test_spinkube_manifests_run_the_key_value_build_over_the_store_the_spinapp_configures(self):
        shipped = tomllib.loads((ROOT / "deploy/wasm/spin.toml").read_text())
        derived = tomllib.loads((ROOT / "deploy/wasm/idp/spin.toml").read_text())
        dockerfile = (ROOT / "deploy/wasm/Dockerfile").read_text()
        for manifest in (shipped, derived):
            [component] = manifest["component"].values()
            # The file the image ships, and the store the key-value build opens first.
            self.assertEqual(component["source"], "jwtv_component_kv.wasm")
            self.assertIn(f"COPY {component['source']} /{component['source']}", dockerfile)
            self.assertEqual(component["key_value_stores"], ["default"])
        # The remote-keys manifest lets the component reach its issuer, and nothing else.
        [component] = derived["component"].values()
        env = component["environment"]
        issuer_origin = "/".join(env["JWT_ISSUER"].split("/")[:3])
        self.assertEqual(component["allowed_outbound_hosts"], [issuer_origin])
        self.assertEqual(env["JWT_OIDC_DISCOVERY"], "true")
        self.assertIn("JWT_AUDIENCE", env)
        # The SpinApp points that same store at one shared backend, its URL from a Secret.
        [spinapp] = [d for p, d in self.documents() if d["kind"] == "SpinApp"]
        [store] = spinapp["spec"]["runtimeConfig"]["keyValueStores"]
        self.assertEqual((store["name"], store["type"]), ("default", "redis"))
        [option] = store["options"]
        self.assertEqual(option["name"], "url")
        self.assertEqual(set(option["valueFrom"]["secretKeyRef"]), {"name", "key"})
        self.assertNotIn("value", option, "a Redis URL holds its password: from a Secret only")

    def test_checkov_finds_nothing_in_manifests_and_dockerfiles(self):
        checkov = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".cache/venv-deploy")) / "bin/checkov"
        done = run(
            checkov, "--config-file", ROOT / "deploy/.checkov.yaml", "--directory", ROOT / "deploy",
            timeout=COMMAND_TIMEOUT, check=False,
        )
        self.assertEqual(done.returncode, 0, done.stdout[-6000:] + done.stderr[-2000:])
        # Each framework ran: the manifests, their kustomizations and the Dockerfiles.
        for framework in ("kubernetes", "kustomize", "dockerfile"):
            self.assertIn(f"{framework} scan results", done.stdout)


class NativeImage(unittest.TestCase):
    """The FROM scratch image of the static binary, run with podman on the host's loopback."""

    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        cls.name = f"jwtv-native-{cls.port}"
        podman(
            "run", "--detach", "--name", cls.name, "--network", "host", "--read-only",
            "--env", f"JWT_SECRET={SECRET}", "--env", f"JWT_LISTEN=127.0.0.1:{cls.port}",
            image("native"),
        )
        wait_ready(cls.port)

    @classmethod
    def tearDownClass(cls):
        podman("rm", "--force", "--time", "0", cls.name, check=False)

    def mint(self):
        return podman(
            "run", "--rm", "--network", "none", "--env", f"JWT_SECRET={SECRET}",
            image("native"), "mint", "--sub", "alice",
        ).stdout.strip()

    def test_validate_answers_200_for_a_valid_token_and_401_for_a_tampered_one(self):
        token = self.mint()
        status, body = validate(self.port, token)
        self.assertEqual((status, body["valid"], body["claims"]["sub"]), (200, True, "alice"))
        status, body = validate(self.port, tampered(token))
        self.assertEqual((status, body["error"]), (401, "invalid_signature"))

    def test_the_process_runs_as_the_non_root_user_on_a_read_only_root(self):
        pid = podman("inspect", "--format", "{{.State.Pid}}", self.name).stdout.strip()
        uids = next(
            line.split()[1:] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if line.startswith("Uid:")
        )
        self.assertEqual(set(uids), {"65532"})
        config = json.loads(podman("image", "inspect", image("native")).stdout)[0]["Config"]
        self.assertEqual(config["User"], "65532:65532")
        self.assertEqual(
            podman("inspect", "--format", "{{.HostConfig.ReadonlyRootfs}}", self.name).stdout.strip(),
            "true",
        )

    def test_image_carries_the_oci_labels_and_the_probe_healthcheck(self):
        inspected = json.loads(podman("image", "inspect", image("native")).stdout)[0]
        labels = inspected["Config"]["Labels"]
        for key in ("source", "revision", "version", "licenses"):
            self.assertTrue(labels.get(f"org.opencontainers.image.{key}"), key)
        self.assertEqual(inspected["Config"]["Entrypoint"], ["/jwt-validator"])
        self.assertIn("probe", inspected["Healthcheck"]["Test"])

    def test_probe_mode_exits_0_when_ready_and_1_when_nothing_answers(self):
        url = f"http://127.0.0.1:{self.port}/readyz"
        self.assertEqual(podman("exec", self.name, "/jwt-validator", "probe", url).returncode, 0)
        closed = f"http://127.0.0.1:{free_port()}/readyz"
        done = podman("exec", self.name, "/jwt-validator", "probe", closed, check=False)
        self.assertEqual(done.returncode, 1, done.stderr)
        self.assertIn("cannot connect", done.stderr)

    def test_sigterm_stops_the_container_with_status_0_before_the_grace_period(self):
        port = free_port()
        name = f"jwtv-native-stop-{port}"
        podman(
            "run", "--detach", "--name", name, "--network", "host", "--read-only",
            "--env", f"JWT_SECRET={SECRET}", "--env", f"JWT_LISTEN=127.0.0.1:{port}",
            image("native"),
        )
        try:
            wait_ready(port)
            # `podman stop` sends SIGTERM, and SIGKILL only after the grace period (status 137).
            podman("stop", "--time", "15", name, timeout=60)
            state = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
            self.assertEqual(state, "0")
        finally:
            podman("rm", "--force", "--time", "0", name, check=False)


class Registry:
    """A registry (Debian's docker-registry) on 127.0.0.1 at a free port, its storage in a temporary
    folder; `host` is what image references name."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="jwtv-registry-"))
        port = free_port()
        config = self.dir / "config.yml"
        config.write_text(
            "version: 0.1\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.dir / 'data'}\n"
            f"http:\n  addr: 127.0.0.1:{port}\n"
        )
        self.process = subprocess.Popen(
            ["docker-registry", "serve", str(config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_ready(port, "/v2/")
        self.host = f"127.0.0.1:{port}"

    def close(self):
        self.process.terminate()
        self.process.wait(timeout=WAIT)
        shutil.rmtree(self.dir, ignore_errors=True)


class WasmImage(unittest.TestCase):
    """The SpinKube image and the wasm OCI artifact, through a real registry on loopback."""

    @classmethod
    def setUpClass(cls):
        cls.registry = Registry()
        cls.dir = cls.registry.dir
        cls.registry_host = cls.registry.host
        # The SpinKube image's component (the key-value build), and the artifact's (the default build).
        cls.component = ROOT / ".cache/image/context/wasm/jwtv_component_kv.wasm"
        target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
        cls.default_component = target / "wasm32-wasip2/wasm/jwtv_component.opt.wasm"

    @classmethod
    def tearDownClass(cls):
        cls.registry.close()

    def pull_to_layout(self, name):
        layout = self.dir / f"pulled-{name}"
        run(
            "skopeo", "copy", "--src-tls-verify=false",
            f"docker://{self.registry_host}/{name}:0.1.0", f"oci:{layout}:0.1.0",
        )
        index = json.loads((layout / "index.json").read_text())
        manifest = self.blob(layout, index["manifests"][0]["digest"])
        return layout, json.loads(manifest)

    @staticmethod
    def blob(layout, digest):
        return (layout / "blobs/sha256" / digest.split(":", 1)[1]).read_bytes()

    def test_wasm_artifact_round_trips_through_a_registry_byte_identical(self):
        run(
            "skopeo", "copy", "--dest-tls-verify=false", image("wasm-artifact"),
            f"docker://{self.registry_host}/jwt-validator-component:0.1.0",
        )
        layout, manifest = self.pull_to_layout("jwt-validator-component")
        self.assertEqual(manifest["config"]["mediaType"], "application/vnd.wasm.config.v0+json")
        [layer] = manifest["layers"]
        self.assertEqual(layer["mediaType"], "application/wasm")
        self.assertEqual(self.blob(layout, layer["digest"]), self.default_component.read_bytes())

    def test_spinkube_image_round_trips_with_spin_toml_and_the_component_at_its_root(self):
        podman(
            "push", "--tls-verify=false", image("wasm"),
            f"docker://{self.registry_host}/jwt-validator-wasm:0.1.0",
        )
        layout, manifest = self.pull_to_layout("jwt-validator-wasm")
        config = json.loads(self.blob(layout, manifest["config"]["digest"]))
        self.assertEqual((config["os"], config["architecture"]), ("wasi", "wasm"))
        files = {}
        for layer in manifest["layers"]:
            with tarfile.open(layout / "blobs/sha256" / layer["digest"].split(":", 1)[1]) as tar:
                for member in tar.getmembers():
                    if member.isfile():
                        files[member.name.lstrip("./")] = tar.extractfile(member).read()
        self.assertEqual(files["spin.toml"], (ROOT / "deploy/wasm/spin.toml").read_bytes())
        self.assertEqual(files["jwtv_component_kv.wasm"], self.component.read_bytes())

    def test_spinkube_image_ships_the_key_value_build_and_the_artifact_the_default_one(self):
        image("wasm")
        # A component names the interfaces it imports in its import section; Spin offers draft2.
        self.assertIn(b"wasi:keyvalue/store@0.2.0-draft2", self.component.read_bytes())
        self.assertIn(b"wasi:keyvalue/atomics@0.2.0-draft2", self.component.read_bytes())
        # The artifact instantiates on `wasmtime serve` and any wasi:http host: no key-value import.
        self.assertNotIn(b"wasi:keyvalue", self.default_component.read_bytes())


def elf_machine_and_interpreter(binary):
    """The ELF e_machine of a 64-bit little-endian executable and whether it asks for a dynamic
    loader (a PT_INTERP program header): a static binary has none."""
    data = binary.read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, "64-bit little-endian ELF"
    machine = int.from_bytes(data[18:20], "little")
    phoff = int.from_bytes(data[32:40], "little")
    phentsize = int.from_bytes(data[54:56], "little")
    phnum = int.from_bytes(data[56:58], "little")
    types = [int.from_bytes(data[phoff + i * phentsize:][:4], "little") for i in range(phnum)]
    return machine, 3 in types  # PT_INTERP = 3


EM_X86_64, EM_AARCH64 = 62, 183


class MultiArch(unittest.TestCase):
    """The images for amd64 and arm64: the arm64 static binary, cross-built, taken out of its image and
    run under qemu-user-static (Debian's qemu-aarch64-static, by name); the manifest list of both
    pushed to a registry on 127.0.0.1 and read back."""

    @classmethod
    def setUpClass(cls):
        cls.list = image("multiarch")
        cls.dir = Path(tempfile.mkdtemp(prefix="jwtv-arm64-"))
        cls.binary = {}
        for kind in ("native", "native-arm64"):
            name = f"jwtv-extract-{kind}-{os.getpid()}"
            podman("create", "--name", name, image(kind))
            try:
                podman("cp", f"{name}:/jwt-validator", cls.dir / kind)
            finally:
                podman("rm", "--force", name, check=False)
            cls.binary[kind] = cls.dir / kind

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def qemu(self, *args, **kw):
        return run("qemu-aarch64-static", self.binary["native-arm64"], *args, **kw)

    def test_each_image_is_for_its_platform_and_holds_a_static_binary_of_its_architecture(self):
        for kind, arch, machine in (("native", "amd64", EM_X86_64), ("native-arm64", "arm64", EM_AARCH64)):
            inspected = json.loads(podman("image", "inspect", image(kind)).stdout)[0]
            self.assertEqual((inspected["Os"], inspected["Architecture"]), ("linux", arch), kind)
            self.assertEqual(elf_machine_and_interpreter(self.binary[kind]), (machine, False), kind)

    def test_arm64_binary_under_qemu_prints_its_version(self):
        version = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["package"]["version"]
        self.assertIn(version, self.qemu("--version").stdout)

    def test_arm64_binary_under_qemu_answers_200_for_a_valid_token_and_401_for_a_tampered_one(self):
        port = free_port()
        env = dict(os.environ, JWT_SECRET=SECRET, JWT_LISTEN=f"127.0.0.1:{port}")
        server = subprocess.Popen(
            ["qemu-aarch64-static", str(self.binary["native-arm64"])], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        try:
            wait_ready(port)
            token = self.qemu("mint", "--sub", "alice", env={"JWT_SECRET": SECRET}).stdout.strip()
            status, body = validate(port, token)
            self.assertEqual((status, body["valid"], body["claims"]["sub"]), (200, True, "alice"))
            status, body = validate(port, tampered(token))
            self.assertEqual((status, body["error"]), (401, "invalid_signature"))
        finally:
            server.terminate()
            server.wait(timeout=WAIT)
            server.stderr.close()

    def test_manifest_list_pushed_to_a_registry_names_both_platforms(self):
        registry = Registry()
        try:
            remote = f"docker://{registry.host}/jwt-validator:0.1.0"
            podman(
                "manifest", "push", "--all", "--tls-verify=false", self.list, remote, timeout=COMMAND_TIMEOUT
            )
            index = json.loads(run("skopeo", "inspect", "--raw", "--tls-verify=false", remote).stdout)
            self.assertIn(index["mediaType"], (
                "application/vnd.oci.image.index.v1+json",
                "application/vnd.docker.distribution.manifest.list.v2+json",
            ))
            platforms = {(m["platform"]["os"], m["platform"]["architecture"]) for m in index["manifests"]}
            self.assertEqual(platforms, {("linux", "amd64"), ("linux", "arm64")})
            # Each entry is an image of the platform it names: what a node of that kind pulls.
            for entry in index["manifests"]:
                pinned = f"docker://{registry.host}/jwt-validator@{entry['digest']}"
                inspected = json.loads(run("skopeo", "inspect", "--tls-verify=false", pinned).stdout)
                self.assertEqual(
                    (inspected["Os"], inspected["Architecture"]),
                    (entry["platform"]["os"], entry["platform"]["architecture"]),
                )
        finally:
            registry.close()


NAMESPACE = "jwt-validator"  # the base's, and every overlay's and example's


def kustomizations():
    """The base and every overlay: the folders `kubectl apply -k` takes."""
    return sorted(p.parent for p in KUBE.rglob("kustomization.yaml"))


def kustomize(folder):
    """`kubectl kustomize` of a base or overlay, as a user renders it, in a copy of deploy/kubernetes
    where every file a secretGenerator names and git does not hold (overlays/production/secrets/hmac)
    is made with 32 random bytes, as the overlay's comment tells its user."""
    with tempfile.TemporaryDirectory(prefix="jwtv-kustomize-") as tmp:
        copy = Path(tmp) / "kubernetes"
        shutil.copytree(KUBE, copy)
        target = copy / folder.relative_to(KUBE)
        spec = yaml.safe_load((target / "kustomization.yaml").read_text())
        for generator in spec.get("secretGenerator", []):
            for entry in generator.get("files", []):
                path = target / entry.split("=", 1)[-1]
                if not path.exists():
                    path.write_text(os.urandom(32).hex() + "\n")
        out = run(KUBECTL, "kustomize", target).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def one(docs, kind):
    [doc] = [d for d in docs if d["kind"] == kind]
    return doc


class Kustomize(unittest.TestCase):
    """The base and every overlay rendered by `kubectl kustomize` (kustomize v5), as `kubectl apply -k`
    would send them, and checked against the Kubernetes schemas and against each other."""

    @classmethod
    def setUpClass(cls):
        cls.rendered = {folder.relative_to(KUBE).as_posix(): kustomize(folder) for folder in kustomizations()}

    def test_base_and_every_overlay_are_rendered(self):
        self.assertIn("base", self.rendered)
        self.assertIn("overlays/production", self.rendered)
        self.assertIn("overlays/idp", self.rendered)
        for name, docs in self.rendered.items():
            self.assertIn("Deployment", {d["kind"] for d in docs}, name)

    def test_every_rendered_object_is_valid_against_the_kubernetes_schemas(self):
        import kubernetes_validate

        failures = []
        for name, docs in self.rendered.items():
            for doc in docs:
                try:
                    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
                except kubernetes_validate.ValidationError as e:
                    failures.append(f"{name}: {doc['kind']}: {e.message} at {list(e.path)}")
        self.assertEqual(failures, [])

    def test_every_rendered_object_is_in_the_one_namespace(self):
        for name, docs in self.rendered.items():
            self.assertEqual(one(docs, "Namespace")["metadata"]["name"], NAMESPACE, name)
            for doc in docs:
                if doc["kind"] != "Namespace":
                    self.assertEqual(doc["metadata"].get("namespace"), NAMESPACE, f"{name}: {doc['kind']}")

    def test_every_configmap_and_secret_the_pods_mount_is_rendered_beside_them(self):
        for name, docs in self.rendered.items():
            present = {(d["kind"], d["metadata"]["name"]) for d in docs}
            pod = one(docs, "Deployment")["spec"]["template"]["spec"]
            for volume in pod["volumes"]:
                if "configMap" in volume:
                    self.assertIn(("ConfigMap", volume["configMap"]["name"]), present, name)
                elif "secret" in volume:
                    wanted = ("Secret", volume["secret"]["secretName"])
                    # Only an optional Secret may be absent: the base's, for HMAC issuers it does not have.
                    if not volume["secret"].get("optional"):
                        self.assertIn(wanted, present, name)
                    elif wanted not in present:
                        self.assertNotIn("secret_file", config_toml(docs), name)

    def test_base_configures_an_identity_provider_and_no_secret(self):
        docs = self.rendered["base"]
        self.assertNotIn("Secret", {d["kind"] for d in docs})
        config = tomllib.loads(config_toml(docs))
        [issuer] = config["issuers"]
        self.assertTrue(issuer.get("discovery") or issuer.get("jwks_uri"), issuer)
        self.assertTrue(issuer.get("audiences"), issuer)

    def test_production_overlay_adds_the_hmac_issuer_with_its_secret(self):
        docs = self.rendered["overlays/production"]
        secret = one(docs, "Secret")
        issuers = tomllib.loads(config_toml(docs))["issuers"]
        files = [i["secret_file"] for i in issuers if "secret_file" in i]
        self.assertEqual(files, ["/etc/jwt-validator/secret/hmac"])
        self.assertIn("hmac", secret["data"])
        pod = one(docs, "Deployment")["spec"]["template"]["spec"]
        [mount] = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "secret"]
        self.assertEqual(mount["mountPath"], "/etc/jwt-validator/secret")
        # Its issuer needs the secret: no pod without it.
        [volume] = [v for v in pod["volumes"] if v["name"] == "secret"]
        self.assertEqual(volume["secret"]["secretName"], secret["metadata"]["name"])
        self.assertIs(volume["secret"]["optional"], False)

    def test_base_image_is_the_local_build_and_production_retags_it_for_a_registry(self):
        # That this is the very reference scripts/image prints, KubePlay checks against a real build.
        version = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["package"]["version"]
        container = one(self.rendered["base"], "Deployment")["spec"]["template"]["spec"]["containers"][0]
        self.assertEqual(container["image"], f"localhost/jwt-validator:{version}")
        # An overlay's `images:` retags it; production's does, so its image is no longer the local one.
        production = one(self.rendered["overlays/production"], "Deployment")
        retagged = production["spec"]["template"]["spec"]["containers"][0]["image"]
        self.assertTrue(retagged.startswith("registry.example.com/platform/jwt-validator"), retagged)

    def test_pods_carry_prometheus_scrape_annotations_for_their_serving_port(self):
        template = one(self.rendered["base"], "Deployment")["spec"]["template"]
        annotations = template["metadata"]["annotations"]
        [port] = template["spec"]["containers"][0]["ports"]
        self.assertEqual(annotations["prometheus.io/scrape"], "true")
        self.assertEqual(annotations["prometheus.io/port"], str(port["containerPort"]))
        self.assertEqual(annotations["prometheus.io/path"], "/metrics")

    def test_network_policy_admits_the_documented_gateways_and_prometheus(self):
        policy = one(self.rendered["base"], "NetworkPolicy")
        admitted = {
            peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            for rule in policy["spec"]["ingress"] for peer in rule["from"] if "namespaceSelector" in peer
        }
        # ingress-nginx, Envoy Gateway, Traefik, the Caddy ingress controller, kube-prometheus.
        self.assertEqual(
            admitted, {"ingress-nginx", "envoy-gateway-system", "traefik", "caddy-system", "monitoring"}
        )
        text = (KUBE / "base/networkpolicy.yaml").read_text()
        for name in admitted:
            self.assertIn(f"namespace {name}", text, "each admitted namespace is documented")

    def test_examples_reach_the_validator_in_the_base_namespace(self):
        seen = []
        for path in sorted((KUBE / "examples").glob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if not doc:
                    continue
                meta = doc["metadata"]
                auth_url = meta.get("annotations", {}).get("nginx.ingress.kubernetes.io/auth-url")
                if auth_url:
                    # http://SERVICE.NAMESPACE.svc…
                    seen.append((path.name, auth_url.split("//", 1)[1].split(".")[1]))
                for protocol in ("http", "grpc"):
                    ext_auth = doc.get("spec", {}).get("extAuth", {}).get(protocol, {})
                    for ref in ext_auth.get("backendRefs", []):
                        seen.append((path.name, ref["namespace"]))
                if doc["kind"] in ("ReferenceGrant", "SpinApp"):
                    seen.append((path.name, meta["namespace"]))
        self.assertEqual(
            {name for name, _ in seen},
            {"envoy-gateway.yaml", "envoy-gateway-grpc.yaml", "ingress-nginx.yaml", "spinapp.yaml"},
        )
        self.assertEqual({ns for _, ns in seen}, {NAMESPACE}, seen)


def config_toml(docs):
    [configmap] = [
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "jwt-validator-config"
    ]
    return configmap["data"]["config.toml"]


class KeyServer:
    """An identity provider's key endpoints on 127.0.0.1 (Python's http.server): its OIDC discovery
    document and its JWK set, one ES256 public key made with openssl. Counts the requests it serves."""

    def __init__(self, directory):
        self.directory = directory
        self.key = directory / "key.pem"
        run("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", self.key)
        self.key.chmod(0o644)
        der = run("openssl", "pkey", "-in", self.key, "-pubout", "-outform", "DER", text=False).stdout
        # An uncompressed P-256 point ends the SPKI: 0x04, then x and y, 32 bytes each.
        point = der[-65:]
        assert point[0] == 4, "uncompressed point"
        b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
        self.kid = "k8s-test-1"
        self.jwks = {"keys": [{"kty": "EC", "crv": "P-256", "kid": self.kid, "alg": "ES256", "use": "sig",
                               "x": b64(point[1:33]), "y": b64(point[33:])}]}
        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": server.issuer, "jwks_uri": f"{server.issuer}/keys"}
                elif self.path == "/keys":
                    body = server.jwks
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.http.server_address[1]}"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.http.shutdown()
        self.http.server_close()


class KubePlay(unittest.TestCase):
    """The base and the production overlay as `kubectl kustomize` renders them, run by `podman kube
    play` on the host network, their identity provider a key server on 127.0.0.1: the base IdP-only
    (OIDC discovery, no Secret), production with its HMAC issuer and generated Secret beside it."""

    @contextlib.contextmanager
    def played(self, folder):
        """Plays the rendered folder with its discovery issuer pointed at a key server; yields the
        port, the key server, the pod template and the rendered documents."""
        port = free_port()
        work = Path(tempfile.mkdtemp(prefix="jwtv-kube-"))
        # The image's user (65532) reads the test's throw-away signing key in it, to mint.
        work.chmod(0o755)
        idp = KeyServer(work)
        docs = kustomize(folder)
        configmap = one(docs, "ConfigMap")
        deployment = one(docs, "Deployment")
        # The rendered configuration with two changes for this host: the discovery issuer is the key
        # server, over plain HTTP, which the validator allows only for loopback and only when told;
        # and it listens on loopback at a free port, as the pod shares the host's network.
        config = configmap["data"]["config.toml"]
        [issuer] = [i for i in tomllib.loads(config)["issuers"] if i.get("discovery")]
        config = config.replace(f'issuer = "{issuer["issuer"]}"', f'issuer = "{idp.issuer}"')
        config = config.replace('listen = "0.0.0.0:3000"', f'listen = "127.0.0.1:{port}"')
        config += "\n[fetch]\nallow_http_loopback = true\n"
        self.assertIn(idp.issuer, [i["issuer"] for i in tomllib.loads(config)["issuers"]])
        configmap["data"]["config.toml"] = config
        template = deployment["spec"]["template"]
        pod = template["spec"]
        container = pod["containers"][0]
        # What a single host needs: one replica, on the host's network (to reach the key server on
        # 127.0.0.1). There a container port is the host's port, which podman 4.3 refuses to map
        # ("PortMappings can only be used with Bridge or slirp4netns"): the listener above says it.
        deployment["spec"]["replicas"] = 1
        pod["hostNetwork"] = True
        [declared] = container.pop("ports")
        self.assertEqual(declared["containerPort"], 3000)
        secrets = [d for d in docs if d["kind"] == "Secret"]
        [volume] = [v for v in pod["volumes"] if "secret" in v]
        if not secrets:
            # No Secret rendered; the volume is optional, so Kubernetes starts the pod without it.
            # podman 4.3's kube play refuses an absent Secret even when optional: leave the volume
            # out, which is what the pod sees in a cluster (no secret file).
            self.assertTrue(volume["secret"]["optional"])
            pod["volumes"].remove(volume)
            container["volumeMounts"] = [m for m in container["volumeMounts"] if m["name"] != volume["name"]]
        play = work / "play.yaml"
        play.write_text(yaml.safe_dump_all([configmap, *secrets, deployment]))
        try:
            podman("kube", "play", play, timeout=COMMAND_TIMEOUT)
            try:
                wait_ready(port)
            except AssertionError as e:
                logs = podman("pod", "logs", "jwt-validator-pod-0", check=False)
                raise AssertionError(f"{e}\n{logs.stdout[-2000:]}{logs.stderr[-2000:]}") from None
            yield port, idp, template, docs
        finally:
            podman("kube", "down", play, check=False, timeout=COMMAND_TIMEOUT)
            podman("secret", "rm", "--all", check=False)
            idp.close()
            shutil.rmtree(work, ignore_errors=True)

    def mint_with_idp_key(self, idp):
        (idp.directory / "pub.pem").write_text(run("openssl", "pkey", "-in", idp.key, "-pubout").stdout)
        (idp.directory / "pub.pem").chmod(0o644)
        return podman(
            "run", "--rm", "--network", "none", "--volume", f"{idp.directory}:/k:ro",
            "--env", "JWT_PUBLIC_KEY_FILE=/k/pub.pem", image("native"),
            "mint", "--private-key", "/k/key.pem", "--kid", idp.kid, "--iss", idp.issuer,
            "--aud", "api", "--sub", "alice",
        ).stdout.strip()

    def test_base_with_an_idp_only_configuration_becomes_ready_and_validates(self):
        base = KUBE / "base"
        # The image is run as the base names it: the reference scripts/image built.
        self.assertEqual(
            one(kustomize(base), "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"],
            image("native"),
        )
        with self.played(base) as (port, idp, template, _):
            # Ready means the key set came from the IdP: discovery, then its jwks_uri.
            self.assertEqual(idp.requests[:2], ["/.well-known/openid-configuration", "/keys"])
            container = template["spec"]["containers"][0]
            # Every probe the Deployment declares answers 200.
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                status, _ = http_request(port, "GET", container[probe]["httpGet"]["path"])
                self.assertEqual(status, 200, probe)
            token = self.mint_with_idp_key(idp)
            status, body = validate(port, token)
            self.assertEqual((status, body["valid"], body["claims"]["sub"]), (200, True, "alice"), body)
            status, body = validate(port, tampered(token))
            self.assertEqual((status, body["error"]), (401, "invalid_signature"))
            # The runbook's `explain`, in the pod with its own configuration: accepted (exit 0).
            done = podman(
                "exec", f"jwt-validator-pod-0-{container['name']}", "/jwt-validator",
                "--config", "/etc/jwt-validator/config/config.toml", "explain", token, check=False,
            )
            self.assertEqual(done.returncode, 0, done.stdout[-2000:] + done.stderr[-2000:])
            # Prometheus finds what the annotations name, and the key set fetched from the IdP there.
            annotations = template["metadata"]["annotations"]
            status, metrics = http_request(port, "GET", annotations["prometheus.io/path"])
            self.assertEqual(status, 200)
            self.assertIn(f'jwtv_key_set_loaded{{issuer="{idp.issuer}"}} 1', metrics.decode())

    def test_production_overlay_validates_idp_tokens_and_hmac_tokens_with_its_generated_secret(self):
        production = KUBE / "overlays/production"
        # Its image is your registry's (checked in Kustomize); here, the same build under the local name.
        deployment = one(kustomize(production), "Deployment")
        podman("tag", image("native"), deployment["spec"]["template"]["spec"]["containers"][0]["image"])
        with self.played(production) as (port, idp, _, docs):
            status, body = validate(port, self.mint_with_idp_key(idp))
            self.assertEqual((status, body["valid"]), (200, True), body)
            # Sign with the bytes the pod's secret file holds: podman 4.3 writes a Secret's `data`
            # values base64-encoded instead of decoded (Kubernetes decodes them).
            name = one(docs, "Secret")["metadata"]["name"]
            volume = podman("volume", "inspect", "--format", "{{.Mountpoint}}", name)
            hmac = (Path(volume.stdout.strip()) / "hmac").read_text()
            token = podman(
                "run", "--rm", "--network", "none", "--env", f"JWT_SECRET={hmac}", image("native"),
                "mint", "--sub", "svc", "--iss", "https://internal.example.com", "--aud", "api",
            ).stdout.strip()
            status, body = validate(port, token)
            self.assertEqual(
                (status, body["valid"], body["claims"]["iss"]), (200, True, "https://internal.example.com"), body
            )
            self.assertEqual(validate(port, tampered(token))[0], 401)


if __name__ == "__main__":
    unittest.main()
