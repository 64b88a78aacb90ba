"""The deployment, tested for real and offline: every Kubernetes manifest against the Kubernetes schemas,
checkov on the manifests and Dockerfiles, then the images built by scripts/image into a throw-away
podman store and run on loopback (the native image answering /validate, as a non-root user on a
read-only root, stopping on SIGTERM, probing itself), the wasm image and the wasm OCI artifact pushed to
a registry on 127.0.0.1 and pulled back byte-identical, and the Deployment with its ConfigMap and Secret
under `podman kube play`.

Run with the deploy virtualenv (scripts/setup deploy): `.cache/venv-deploy/bin/python -m unittest
deploy.tests.test_deploy` from the repository root. Every wait is bounded; every container, pod and
process started here is removed by name or PID.
"""

import base64
import http.client
import json
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
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
}
SECRET = "deploy-test-secret-0123456789abcdefghijklmnopq"
COMMAND_TIMEOUT = 600  # a build; every other command is far quicker
WAIT = 20.0  # seconds for a container to answer or stop

_store = None  # the throw-away podman store of this run
_images = {}  # "native" | "wasm" | "wasm-artifact" -> reference


def run(*args, timeout=120, check=True, env=None):
    """Runs a command to completion (bounded); its stdout, stripped."""
    full_env = dict(os.environ, CONTAINERS_CONF=CONTAINERS_CONF, **(env or {}))
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=timeout, env=full_env
    )
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))}: exit {done.returncode}\n{done.stderr[-3000:]}")
    return done


def podman(*args, **kw):
    return run("podman", "--root", _store / "root", "--runroot", _store / "runroot", *args, **kw)


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


def images():
    """The images, built by scripts/image into this run's store the first time a test needs them.
    Not the node baseline's: only the showdown uses it, and its Debian root costs minutes to make on a
    fresh machine."""
    global _store
    if not _images:
        _store = Path(tempfile.mkdtemp(prefix="jwtv-deploy-"))
        podman_cmd = f"podman --root {_store / 'root'} --runroot {_store / 'runroot'}"
        out = run(
            ROOT / "scripts/image", "native", "wasm", timeout=3 * COMMAND_TIMEOUT, env={"PODMAN": podman_cmd}
        ).stdout
        _images.update(line.split(" ", 1) for line in out.splitlines())
    return _images


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
            named = spec.get("resources", []) + [p["path"] for p in spec.get("patches", [])]
            for name in named:
                self.assertTrue((kustomization.parent / name).exists(), f"{kustomization}: {name}")

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
            images()["native"],
        )
        wait_ready(cls.port)

    @classmethod
    def tearDownClass(cls):
        podman("rm", "--force", "--time", "0", cls.name, check=False)

    def mint(self):
        return podman(
            "run", "--rm", "--network", "none", "--env", f"JWT_SECRET={SECRET}",
            images()["native"], "mint", "--sub", "alice",
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
        config = json.loads(podman("image", "inspect", images()["native"]).stdout)[0]["Config"]
        self.assertEqual(config["User"], "65532:65532")
        self.assertEqual(
            podman("inspect", "--format", "{{.HostConfig.ReadonlyRootfs}}", self.name).stdout.strip(),
            "true",
        )

    def test_image_carries_the_oci_labels_and_the_probe_healthcheck(self):
        image = json.loads(podman("image", "inspect", images()["native"]).stdout)[0]
        labels = image["Config"]["Labels"]
        for key in ("source", "revision", "version", "licenses"):
            self.assertTrue(labels.get(f"org.opencontainers.image.{key}"), key)
        self.assertEqual(image["Config"]["Entrypoint"], ["/jwt-validator"])
        self.assertIn("probe", image["Healthcheck"]["Test"])

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
            images()["native"],
        )
        try:
            wait_ready(port)
            # `podman stop` sends SIGTERM, and SIGKILL only after the grace period (status 137).
            podman("stop", "--time", "15", name, timeout=60)
            state = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
            self.assertEqual(state, "0")
        finally:
            podman("rm", "--force", "--time", "0", name, check=False)


class WasmImage(unittest.TestCase):
    """The SpinKube image and the wasm OCI artifact, through a real registry on loopback."""

    @classmethod
    def setUpClass(cls):
        cls.dir = Path(tempfile.mkdtemp(prefix="jwtv-registry-"))
        cls.port = free_port()
        config = cls.dir / "config.yml"
        config.write_text(
            "version: 0.1\n"
            f"storage:\n  filesystem:\n    rootdirectory: {cls.dir / 'data'}\n"
            f"http:\n  addr: 127.0.0.1:{cls.port}\n"
        )
        cls.registry = subprocess.Popen(
            ["docker-registry", "serve", str(config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_ready(cls.port, "/v2/")
        cls.registry_host = f"127.0.0.1:{cls.port}"
        cls.component = ROOT / ".cache/image/context/wasm/jwtv_component.wasm"

    @classmethod
    def tearDownClass(cls):
        cls.registry.terminate()
        cls.registry.wait(timeout=WAIT)
        shutil.rmtree(cls.dir, ignore_errors=True)

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
            "skopeo", "copy", "--dest-tls-verify=false", images()["wasm-artifact"],
            f"docker://{self.registry_host}/jwt-validator-component:0.1.0",
        )
        layout, manifest = self.pull_to_layout("jwt-validator-component")
        self.assertEqual(manifest["config"]["mediaType"], "application/vnd.wasm.config.v0+json")
        [layer] = manifest["layers"]
        self.assertEqual(layer["mediaType"], "application/wasm")
        self.assertEqual(self.blob(layout, layer["digest"]), self.component.read_bytes())

    def test_spinkube_image_round_trips_with_spin_toml_and_the_component_at_its_root(self):
        podman(
            "push", "--tls-verify=false", images()["wasm"],
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
        self.assertEqual(files["jwtv_component.wasm"], self.component.read_bytes())


class KubePlay(unittest.TestCase):
    """The base Deployment, its ConfigMap and Secret, run by `podman kube play` (slirp4netns)."""

    def test_deployment_with_its_configmap_and_secret_serves_a_valid_token(self):
        port = free_port()
        base = KUBE / "base"
        configmap = yaml.safe_load((base / "configmap.yaml").read_text())
        secret = yaml.safe_load((base / "secret.yaml").read_text())
        # The API server folds stringData into base64 `data`; podman 4.3 reads only `data`.
        del secret["stringData"]
        secret["data"] = {"hmac": base64.b64encode(SECRET.encode()).decode()}
        deployment = yaml.safe_load((base / "deployment.yaml").read_text())
        pod = deployment["spec"]["template"]["spec"]
        pod["containers"][0]["image"] = images()["native"]
        # What a single host needs: the pod's port published on loopback, which one replica can hold.
        deployment["spec"]["replicas"] = 1
        pod["containers"][0]["ports"][0].update(hostIP="127.0.0.1", hostPort=port)
        play = Path(tempfile.mkdtemp(prefix="jwtv-kube-")) / "play.yaml"
        play.write_text(yaml.safe_dump_all([configmap, secret, deployment]))
        try:
            podman("kube", "play", "--network", "slirp4netns", play, timeout=COMMAND_TIMEOUT)
            try:
                wait_ready(port)
            except AssertionError as e:
                logs = podman("pod", "logs", "jwt-validator-pod-0", check=False)
                raise AssertionError(f"{e}\n{logs.stdout[-2000:]}{logs.stderr[-2000:]}") from None
            # Sign with the bytes the pod's secret file holds: podman 4.3 writes a Secret's `data`
            # values base64-encoded instead of decoded (Kubernetes decodes them).
            volume = podman("volume", "inspect", "--format", "{{.Mountpoint}}", "jwt-validator-secret")
            hmac = (Path(volume.stdout.strip()) / "hmac").read_text()
            token = podman(
                "run", "--rm", "--network", "none", "--env", f"JWT_SECRET={hmac}",
                images()["native"], "mint", "--sub", "alice", "--iss", "https://internal.example.com",
                "--aud", "api",
            ).stdout.strip()
            status, body = validate(port, token)
            self.assertEqual((status, body["valid"]), (200, True), body)
            self.assertEqual(validate(port, tampered(token))[0], 401)
        finally:
            podman("kube", "down", play, check=False, timeout=COMMAND_TIMEOUT)
            podman("secret", "rm", "--all", check=False)
            shutil.rmtree(play.parent, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
