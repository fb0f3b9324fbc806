"""Every Serve config in the repository and the cluster files around them (cluster/).

Each Serve config (serve_config.yaml, cluster/serve-gpu.yaml, the RayService's serveConfigV2) is
checked with Ray Serve's own schema, its `args` with the app's AppConfig (which holds each
deployment's Serve options) and by building the app from it; the GPU configs against the cluster
layouts that run them (custom resources, GPU capacity, volumes). Fast: no Ray instance is started.
"""

from __future__ import annotations

import ast
import json
import os
import posixpath
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from ray import cloudpickle
from ray.serve import Application
from ray.serve.schema import ServeDeploySchema

from deployments.app import build_app
from deployments.config import AppConfig, DeploymentOptions

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"
MAIN_CONFIG = "serve_config.yaml"
GPU_CONFIG = "cluster/serve-gpu.yaml"
RAYSERVICE = "cluster/rayservice.yaml"
LAUNCHER = "cluster/cluster-launcher.yaml"
LOCAL_CLUSTER = "cluster/local-cluster.sh"
RAYSERVICE_CONFIG = f"{RAYSERVICE}:serveConfigV2"
GPU_CONFIGS = (GPU_CONFIG, RAYSERVICE_CONFIG)

APP_NAME = "zonos-tts"
IMPORT_PATH = "deployments.app:build_app"
# AppConfig field -> the deployment's name in Serve
DEPLOYMENTS = {
    "ingress": "Ingress",
    "splitter": "TextSplitter",
    "generator": "Generator",
    "vocoder": "Vocoder",
    "voices": "Voices",
}
DEPLOYMENT_NAMES = set(DEPLOYMENTS.values())
RAY_MINOR = "2.60"
SKIP_DIRS = {".git", ".venv", "node_modules", "build", "dist", "out"}


def load(relative: str):
    return yaml.safe_load((ROOT / relative).read_text(encoding="utf-8"))


def rayservice_documents() -> list[dict]:
    return list(yaml.safe_load_all((ROOT / RAYSERVICE).read_text(encoding="utf-8")))


def rayservice() -> dict:
    (service,) = [doc for doc in rayservice_documents() if doc.get("kind") == "RayService"]
    return service


def yaml_files() -> list[str]:
    found = []
    for directory, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith(".") and not d.endswith(".egg-info")]
        found += [str(Path(directory, f).relative_to(ROOT)) for f in files if f.endswith((".yaml", ".yml"))]
    return sorted(found)


def discover_serve_configs() -> dict[str, dict]:
    """Every Serve config in the repo: YAML files with top-level `applications`, and the
    serveConfigV2 of every RayService manifest."""
    configs = {}
    for relative in yaml_files():
        for doc in yaml.safe_load_all((ROOT / relative).read_text(encoding="utf-8")):
            if not isinstance(doc, dict):
                continue
            if "applications" in doc:
                configs[relative] = doc
            if doc.get("kind") == "RayService":
                configs[f"{relative}:serveConfigV2"] = yaml.safe_load(doc["spec"]["serveConfigV2"])
    return configs


SERVE_CONFIGS = discover_serve_configs()


def the_app(config: dict) -> dict:
    (app,) = [app for app in config["applications"] if app["name"] == APP_NAME]
    return app


def app_config(config: dict) -> AppConfig:
    return AppConfig.model_validate(the_app(config).get("args", {}))


def deployments_of(config: dict) -> dict[str, DeploymentOptions]:
    """Each deployment's Serve options, by AppConfig field: the config's over the defaults."""
    app = app_config(config)
    return {field: getattr(app, field) for field in DEPLOYMENTS}


def actor_options(options: DeploymentOptions) -> dict:
    return options.ray_actor_options or {}


def replica_bounds(options: DeploymentOptions) -> tuple[int, int]:
    if options.autoscaling_config is not None:
        scaling = options.autoscaling_config
        return scaling.get("min_replicas", 1), scaling.get("max_replicas", 1)
    return options.num_replicas or 1, options.num_replicas or 1


def kuberay_resources(group: dict) -> dict[str, float]:
    """Custom resources of a KubeRay group: rayStartParams `resources: '"{\\"name\\": n}"'`."""
    raw = group.get("rayStartParams", {}).get("resources")
    if raw is None:
        return {}
    assert raw.startswith('"') and raw.endswith('"'), f"KubeRay wants the JSON quoted: {raw!r}"
    return json.loads(raw[1:-1].replace('\\"', '"'))


def pod_gpus(group: dict) -> int:
    (container,) = group["template"]["spec"]["containers"]
    return int(container.get("resources", {}).get("limits", {}).get("nvidia.com/gpu", 0))


def worker_groups() -> dict[str, dict]:
    return {g["groupName"]: g for g in rayservice()["spec"]["rayClusterConfig"]["workerGroupSpecs"]}


# ----------------------------------------------------------------------- every Serve config


def test_every_known_serve_config_is_discovered():
    assert {MAIN_CONFIG, GPU_CONFIG, RAYSERVICE_CONFIG} <= set(SERVE_CONFIGS)


@pytest.mark.parametrize("name", sorted(SERVE_CONFIGS))
def test_ray_serve_schema_accepts_it(name):
    schema = ServeDeploySchema.model_validate(SERVE_CONFIGS[name])
    assert [app.name for app in schema.applications] == [APP_NAME]


@pytest.mark.parametrize("name", sorted(SERVE_CONFIGS))
def test_app_args_are_a_valid_app_config(name):
    app = the_app(SERVE_CONFIGS[name])
    assert app["import_path"] == IMPORT_PATH
    assert app["route_prefix"] == "/"
    app_config(SERVE_CONFIGS[name])


def serve_decorators(name: str) -> list[tuple[ast.AST, list[ast.keyword]]]:
    """(decorated node, keyword names) of every `@serve.<name>` or `@serve.<name>(...)` in
    deployments/, read from the source (no Ray)."""
    found = []
    for path in (ROOT / "deployments").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            for decorator in getattr(node, "decorator_list", []):
                call = decorator if isinstance(decorator, ast.Call) else None
                target = call.func if call else decorator
                if isinstance(target, ast.Attribute) and target.attr == name:
                    found.append((node, call.keywords if call else []))
    return found


def deployment_names_in_source() -> set[str]:
    """Names of the @serve.deployment classes in deployments/."""
    names = set()
    for node, keywords in serve_decorators("deployment"):
        explicit = [k.value.value for k in keywords if k.arg == "name"]
        names.add(explicit[0] if explicit else node.name)
    return names


def test_the_app_has_the_expected_deployments():
    assert deployment_names_in_source() == DEPLOYMENT_NAMES


def test_the_code_carries_no_serve_options():
    """Deployment options come from AppConfig through build_app, batch settings through
    `reconfigure`: a literal in a decorator would be a second, dead or conflicting, default."""
    for node, keywords in serve_decorators("deployment") + serve_decorators("batch"):
        assert {k.arg for k in keywords} <= {"name"}, f"{node.name}: {[k.arg for k in keywords]}"


@pytest.mark.parametrize("name", sorted(SERVE_CONFIGS))
def test_deployment_options_live_in_args_only(name):
    """No Serve `deployments:` list: it would override `args` (see serve_config.yaml)."""
    assert "deployments" not in the_app(SERVE_CONFIGS[name])


def built_deployments(app: Application) -> dict:
    """A built app's deployments by name: the ingress and those bound to it (no Ray needed)."""
    ingress = app._bound_deployment
    bound = [arg._bound_deployment for arg in ingress.init_args if isinstance(arg, Application)]
    return {deployment.name: deployment for deployment in [ingress, *bound]}


@pytest.mark.parametrize("name", sorted(SERVE_CONFIGS))
def test_the_built_app_has_the_configs_options(name):
    """build_app applies each deployment's options from `args` (Serve checks their values here),
    and the batched deployments get their batch settings as `user_config`."""
    config = app_config(SERVE_CONFIGS[name])
    built = built_deployments(build_app(the_app(SERVE_CONFIGS[name]).get("args", {})))
    assert set(built) == DEPLOYMENT_NAMES
    for field, deployment_name in DEPLOYMENTS.items():
        deployment = built[deployment_name]
        for key, expected in getattr(config, field).serve_options().items():
            if key == "ray_actor_options":
                actual = deployment.ray_actor_options
            elif key == "autoscaling_config":
                actual = deployment._deployment_config.autoscaling_config.model_dump(include=set(expected))
            else:
                actual = getattr(deployment._deployment_config, key)
            assert actual == expected, (deployment_name, key)
    assert built["Generator"].user_config == config.generator_batch.model_dump()
    assert built["Vocoder"].user_config == config.vocoder_batch.model_dump()


def test_each_deployment_is_bound_the_config_objects_it_uses():
    """Validated objects, not dicts; Serve pickles them to the replicas."""
    args = the_app(load(MAIN_CONFIG))["args"]
    config = AppConfig.model_validate(args)
    built = built_deployments(build_app(args))
    expected = {
        "TextSplitter": (),
        "Generator": (config.sources, config.engine),
        "Vocoder": (config.sources,),
        "Voices": (config.sources, config.voices_db, config.voice_bindings),
    }
    for name, bound in expected.items():
        assert built[name].init_args == bound, name
    assert built["Ingress"].init_args[-1] == config
    for bound in [*expected.values(), config]:
        assert cloudpickle.loads(cloudpickle.dumps(bound)) == bound


@pytest.mark.parametrize("name", sorted(SERVE_CONFIGS))
def test_batching_settings_fit(name):
    """A batch never exceeds max_ongoing_requests."""
    config = app_config(SERVE_CONFIGS[name])
    for options, batch in ((config.generator, config.generator_batch), (config.vocoder, config.vocoder_batch)):
        assert options.max_ongoing_requests >= batch.max_batch_size


@pytest.mark.parametrize("name", sorted(SERVE_CONFIGS))
def test_ingress_scales_to_at_least_half_the_generators(name):
    deployments = deployments_of(SERVE_CONFIGS[name])
    ingress = replica_bounds(deployments["ingress"])
    generator = replica_bounds(deployments["generator"])
    assert 2 * ingress[0] >= generator[0] and 2 * ingress[1] >= generator[1], (ingress, generator)


@pytest.mark.parametrize("name", sorted(SERVE_CONFIGS))
def test_one_voices_replica_owns_the_library(name):
    voices = deployments_of(SERVE_CONFIGS[name])["voices"]
    assert voices.autoscaling_config is None
    assert voices.num_replicas == 1
    assert (voices.max_surge_percent or 0) == 0, "a second replica would wait for the first's slot"


def test_main_config_runs_anywhere_with_the_explicit_fallback():
    config = app_config(load(MAIN_CONFIG))
    assert config.sources.fallback == "random-tiny"
    assert config.sources.device == "cpu"
    for field, options in deployments_of(load(MAIN_CONFIG)).items():
        assert not actor_options(options).get("num_gpus"), field


@pytest.mark.parametrize("name", GPU_CONFIGS)
def test_gpu_configs_have_no_fallback(name):
    args = the_app(SERVE_CONFIGS[name])["args"]
    assert "fallback" not in args["sources"]
    config = app_config(SERVE_CONFIGS[name])
    assert config.sources.fallback is None
    assert config.sources.device.startswith("cuda")
    assert config.sources.dtype == "bfloat16"
    assert posixpath.isabs(config.voices_db), "the voice library belongs on a mounted volume"


@pytest.mark.parametrize("name", GPU_CONFIGS)
def test_gpu_placement(name):
    deployments = deployments_of(SERVE_CONFIGS[name])
    options = {field: actor_options(d) for field, d in deployments.items()}
    assert options["generator"]["num_gpus"] == 1, "one Generator per GPU"
    assert 0 < options["vocoder"]["num_gpus"] < 1, "Vocoders share GPUs"
    assert 0 < options["voices"]["num_gpus"] < 1, "Voices loads the speaker encoder on sources.device"
    for cpu_only in ("ingress", "splitter"):
        assert not options[cpu_only].get("num_gpus"), cpu_only
    for gpu_user in ("generator", "vocoder", "voices"):
        assert options[gpu_user].get("resources"), f"{gpu_user} is not pinned to a node group"


def test_rayservice_serve_config_is_serve_gpu_yaml():
    assert SERVE_CONFIGS[RAYSERVICE_CONFIG] == load(GPU_CONFIG)


# ----------------------------------------------------------------------- the RayService


def test_rayservice_shape():
    service = rayservice()
    assert service["apiVersion"] == "ray.io/v1"
    assert isinstance(service["spec"]["serveConfigV2"], str)
    cluster = service["spec"]["rayClusterConfig"]
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["rayVersion"].startswith(RAY_MINOR + ".")
    head = cluster["headGroupSpec"]
    assert pod_gpus(head) == 0, "the head has no GPU"
    for group in [head, *cluster["workerGroupSpecs"]]:
        params = group.get("rayStartParams", {})
        assert all(isinstance(v, str) for v in params.values()), f"rayStartParams must be strings: {params}"
        kuberay_resources(group)
    groups = cluster["workerGroupSpecs"]
    assert len({g["groupName"] for g in groups}) == len(groups)
    for group in groups:
        assert 0 <= group["minReplicas"] <= group.get("replicas", group["minReplicas"]) <= group["maxReplicas"]
    gpu_lm = worker_groups()["gpu-lm"]
    assert pod_gpus(gpu_lm) == 1 and gpu_lm["minReplicas"] >= 1


def test_rayservice_pods_mount_what_they_name():
    docs = rayservice_documents()
    claims = {doc["metadata"]["name"] for doc in docs if doc.get("kind") == "PersistentVolumeClaim"}
    cluster = rayservice()["spec"]["rayClusterConfig"]
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        spec = group["template"]["spec"]
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in spec["containers"]:
            assert container["image"] == spec["containers"][0]["image"]
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, mount
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            if pod_gpus(group):
                mounted = [m["mountPath"] for m in container.get("volumeMounts", [])]
                assert env.get("HF_HOME") in mounted, "GPU pods keep HF_HOME on the cache volume"
        for volume in volumes.values():
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims, volume


def test_pods_outlast_the_replicas_grace_period():
    """Kubernetes waits terminationGracePeriodSeconds before SIGKILL: every pod's is above the
    replicas' graceful_shutdown_timeout_s. A worker pod's preStop hook drains its Ray node (Serve
    moves its replicas, stopping them gracefully by the drain's deadline minus the grace period),
    so its deadline is at least the grace period and inside the pod's own; the head's drains the
    whole app (deployments.stop) for the grace period before the head goes."""
    app = app_config(SERVE_CONFIGS[RAYSERVICE_CONFIG])
    grace = max(
        [app.graceful_shutdown_timeout_s]
        + [o.graceful_shutdown_timeout_s or 0 for o in deployments_of(SERVE_CONFIGS[RAYSERVICE_CONFIG]).values()]
    )
    cluster = rayservice()["spec"]["rayClusterConfig"]
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        spec = group["template"]["spec"]
        name = group.get("groupName", "head")
        assert spec["terminationGracePeriodSeconds"] > grace, name
        (container,) = spec["containers"]
        if group is cluster["headGroupSpec"]:  # the app drains before the head (and Serve) goes
            (shell,) = [c for c in container["lifecycle"]["preStop"]["exec"]["command"] if "deployments.stop" in c]
            timeout = float(re.search(r"--timeout (\d+)", shell).group(1))
            assert "--keep-serve" in shell and grace <= timeout < spec["terminationGracePeriodSeconds"]
            continue
        (shell,) = [c for c in container["lifecycle"]["preStop"]["exec"]["command"] if "ray drain-node" in c]
        deadline = int(re.search(r"--deadline-remaining-seconds (\d+)", shell).group(1))
        assert grace <= deadline < spec["terminationGracePeriodSeconds"], name
        assert "DRAIN_NODE_REASON_PREEMPTION" in shell, name


def groups_declaring(resource: str) -> list[dict]:
    return [g for g in worker_groups().values() if resource in kuberay_resources(g)]


def test_rayservice_can_place_every_replica_at_full_scale():
    """Every pinned deployment has its group; at max replicas, pinned GPU, CPU and custom
    resources fit in that group's pods at maxReplicas."""
    deployments = deployments_of(SERVE_CONFIGS[RAYSERVICE_CONFIG])
    demand: dict[str, dict[str, float]] = {}
    for name, deployment in deployments.items():
        options = actor_options(deployment)
        custom = options.get("resources", {})
        if not custom:
            continue
        groups = {g["groupName"] for r in custom for g in groups_declaring(r)}
        assert len(groups) == 1, f"{name} must be pinned to exactly one worker group, not {groups}"
        group = groups.pop()
        replicas = replica_bounds(deployment)[1]
        need = demand.setdefault(group, {})
        per_replica = {"GPU": options.get("num_gpus", 0), "CPU": options.get("num_cpus", 1), **custom}
        for resource, amount in per_replica.items():
            need[resource] = need.get(resource, 0) + replicas * amount
    for group_name, need in demand.items():
        group = worker_groups()[group_name]
        (container,) = group["template"]["spec"]["containers"]
        per_pod = {"GPU": pod_gpus(group), "CPU": float(container["resources"]["limits"]["cpu"])}
        per_pod |= kuberay_resources(group)
        for resource, amount in need.items():
            have = group["maxReplicas"] * per_pod.get(resource, 0)
            assert amount <= have + 1e-9, f"{group_name}: {resource} {amount} needed, {have} at most"
    # a whole-GPU replica (Generator) needs a pod per replica: its group must allow them all
    generator = deployments["generator"]
    (lm_group,) = groups_declaring(next(iter(actor_options(generator)["resources"])))
    assert lm_group["maxReplicas"] >= replica_bounds(generator)[1]
    assert lm_group["minReplicas"] >= replica_bounds(generator)[0]


def test_voices_runs_where_its_volume_is_mounted():
    config = SERVE_CONFIGS[RAYSERVICE_CONFIG]
    voices_dir = posixpath.dirname(app_config(config).voices_db)
    resource = next(iter(actor_options(deployments_of(config)["voices"])["resources"]))
    (group,) = groups_declaring(resource)
    assert group["maxReplicas"] == 1, "one pod holds the ReadWriteOnce voice-library volume"
    (container,) = group["template"]["spec"]["containers"]
    assert voices_dir in [m["mountPath"] for m in container["volumeMounts"]]
    claims = [doc for doc in rayservice_documents() if doc.get("kind") == "PersistentVolumeClaim"]
    volumes = {v["name"]: v for v in group["template"]["spec"]["volumes"]}
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == voices_dir]
    claim_name = volumes[mount["name"]]["persistentVolumeClaim"]["claimName"]
    (claim,) = [c for c in claims if c["metadata"]["name"] == claim_name]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]


# ----------------------------------------------------------------------- the cluster launcher


def test_cluster_launcher_is_valid_for_ray():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = load(LAUNCHER)
    validate_config(prepare_config(config))
    assert config["provider"]["type"] == "aws"
    assert RAY_MINOR in config["docker"]["image"]


def test_cluster_launcher_sets_up_the_repo_and_starts_ray():
    config = load(LAUNCHER)
    assert (ROOT / "scripts" / "setup.sh").is_file()
    assert any("bash scripts/setup.sh" in command for command in config["setup_commands"])
    head = " ".join(config["head_start_ray_commands"])
    worker = " ".join(config["worker_start_ray_commands"])
    assert "ray start --head" in head and "--autoscaling-config" in head
    assert "ray start --address=$RAY_HEAD_IP" in worker


def test_cluster_launcher_matches_the_rayservice_layout():
    """The same worker groups, custom resources and scale limits as the RayService, so
    cluster/serve-gpu.yaml places its replicas the same way on both."""
    config = load(LAUNCHER)
    node_types = config["available_node_types"]
    assert set(node_types) == {config["head_node_type"], *worker_groups()}
    assert not node_types[config["head_node_type"]]["resources"], "no placement resources on the head"
    assert config["max_workers"] >= sum(t.get("max_workers", 0) for t in node_types.values())
    for name, group in worker_groups().items():
        node_type = node_types[name]
        assert node_type["resources"] == kuberay_resources(group), name
        assert (node_type["min_workers"], node_type["max_workers"]) == (group["minReplicas"], group["maxReplicas"])


# ----------------------------------------------------------------------- the rest


def test_local_cluster_script():
    script = ROOT / LOCAL_CLUSTER
    subprocess.run(["bash", "-n", str(script)], check=True)
    assert os.access(script, os.X_OK)
    text = script.read_text(encoding="utf-8")
    assert "set -euo pipefail" in text
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    for forbidden in (r"\bpkill\b", r"\bkillall\b", r"\bray\"?\s+stop\b", r"\$RAY\"?\s+stop\b"):
        assert not re.search(forbidden, code), f"stops processes it did not start: {forbidden}"


def test_images_use_the_pinned_ray():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert f'"ray[serve]=={RAY_MINOR}.*"' in pyproject
    dockerfile = (CLUSTER / "Dockerfile").read_text(encoding="utf-8")
    (base,) = re.findall(r"^FROM\s+(\S+)", dockerfile, flags=re.MULTILINE)
    assert base.split(":")[1].startswith(RAY_MINOR + ".") and "py311" in base
    assert "scripts/setup.sh" in dockerfile
