"""deploy/pulumi/__main__.py under Pulumi's mocks: the config it renders passes
``sluice check-config``, and the Kubernetes objects are what the README says, with the tested
manifest's (deploy/kubernetes/sluice.yaml) ports, probes, security settings, resources,
disruption budget and network policy."""

import hashlib
import json
import unittest

import yaml

import harness
from sluice_pulumi import UsagePlanError

MANIFEST = harness.REPOSITORY / "deploy/kubernetes/sluice.yaml"


def manifest(kind: str) -> dict:
    """The tested manifest's object of ``kind``."""
    for document in yaml.safe_load_all(MANIFEST.read_text()):
        if document and document["kind"] == kind:
            return document
    raise AssertionError(f"{MANIFEST} has no {kind}")


class ProgramTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.program = harness.run_program()
        cls.config_text = cls.program.outputs["config"]
        cls.config = yaml.safe_load(cls.config_text)

    def sluice_deployment(self):
        return self.program.one("Deployment", "sluice")

    def test_rendered_config_passes_check_config(self):
        result = harness.check_config(self.config_text)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("ok (1 plans, 1 API keys)", result.stdout + result.stderr)

    def test_rendered_config_is_the_aws_plan_translated(self):
        self.assertEqual(
            self.config["plans"],
            {
                "mlUsagePlan": {
                    "throttle": {"rate": 2, "burst": 1},
                    "quota": {"limit": 1000, "period": "week", "initial_offset": 2},
                    "stages": {"mlApi/prod": {"routes": {"POST /predict": {"rate": 10, "burst": 5}}}},
                }
            },
        )
        self.assertEqual(
            self.config["api_keys"],
            [{"key_sha256": hashlib.sha256(b"demo-key-123").hexdigest(), "plan": "mlUsagePlan", "name": "mlKey"}],
        )
        self.assertEqual(self.config["redis"]["url"], "redis://redis:6379/0")
        self.assertEqual(self.config["server"], {"host": "0.0.0.0", "port": 8080})
        self.assertEqual(self.config["admin"], {"host": "0.0.0.0", "port": 9090})

    def test_config_map_holds_the_file_and_no_raw_key(self):
        config_map = self.program.one("ConfigMap")
        self.assertEqual(list(config_map.inputs["data"]), ["sluice.yaml"])
        self.assertEqual(config_map.inputs["data"]["sluice.yaml"], self.config_text)
        self.assertNotIn("demo-key-123", json.dumps(config_map.inputs))
        self.assertNotIn("test-secret", json.dumps(config_map.inputs))
        # The digest left the secret's protection on purpose; the ConfigMap is no secret in state.
        self.assertEqual(config_map.secret_paths, [])

    def test_secrets(self):
        env = self.program.one("Secret", "sluice-env-0a1b2c3d")
        self.assertEqual(env.inputs["stringData"], {"SLUICE_KEY_SECRET": "test-secret-0123456789abcdef"})
        self.assertEqual(env.inputs["type"], "Opaque")
        self.assertEqual(env.secret_paths, ["stringData"])
        keys = self.program.one("Secret", "sluice-api-keys-0a1b2c3d")
        self.assertEqual(keys.inputs["stringData"], {"mlKey": "demo-key-123"})
        self.assertEqual(keys.secret_paths, ["stringData"])

    def test_deployment_is_the_tested_manifests(self):
        ours = self.sluice_deployment().inputs
        tested = manifest("Deployment")
        self.assertEqual(ours["spec"]["replicas"], 3)
        self.assertEqual(ours["spec"]["selector"], tested["spec"]["selector"])
        self.assertEqual(ours["spec"]["template"]["metadata"], tested["spec"]["template"]["metadata"])
        pod, tested_pod = ours["spec"]["template"]["spec"], tested["spec"]["template"]["spec"]
        self.assertEqual(pod["securityContext"], tested_pod["securityContext"])
        self.assertIs(pod["automountServiceAccountToken"], False)
        (container,), (tested_container,) = pod["containers"], tested_pod["containers"]
        self.assertEqual(container["image"], "registry.example.com/sluice:0.1.0")
        for field in ("name", "imagePullPolicy", "args", "ports", "volumeMounts", "securityContext",
                      "readinessProbe", "livenessProbe", "resources"):
            self.assertEqual(container[field], tested_container[field], field)
        self.assertEqual(container["securityContext"]["readOnlyRootFilesystem"], True)
        self.assertEqual(container["securityContext"]["capabilities"], {"drop": ["ALL"]})
        self.assertEqual(container["readinessProbe"]["httpGet"], {"path": "/readyz", "port": "http"})
        self.assertEqual(container["livenessProbe"]["httpGet"], {"path": "/healthz", "port": "http"})
        self.assertNotIn("cpu", container["resources"]["limits"])

    def test_deployment_mounts_the_config_map_and_reads_the_env_secret(self):
        pod = self.sluice_deployment().inputs["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        self.assertEqual(container["envFrom"], [{"secretRef": {"name": "sluice-env-0a1b2c3d"}}])
        self.assertEqual(container["volumeMounts"], [{"name": "config", "mountPath": "/etc/sluice", "readOnly": True}])
        self.assertEqual(pod["volumes"], [{"name": "config", "configMap": {"name": "sluice-config-0a1b2c3d"}}])
        self.assertEqual(container["args"], ["serve", "--config", "/etc/sluice/sluice.yaml"])
        # The raw keys' Secret is for people, not for Sluice.
        self.assertNotIn("sluice-api-keys", json.dumps(pod))

    def test_service_budget_and_policy_are_the_tested_manifests(self):
        for kind in ("Service", "PodDisruptionBudget", "NetworkPolicy"):
            with self.subTest(kind=kind):
                self.assertEqual(self.program.one(kind, "sluice").inputs["spec"], manifest(kind)["spec"])
        self.assertEqual(
            self.program.one("Service", "sluice").inputs["spec"]["ports"], [{"port": 8080, "targetPort": "http", "name": "http"}]
        )

    def test_redis_appends_to_a_claim_and_only_sluice_reaches_it(self):
        redis = self.program.one("Deployment", "redis").inputs
        self.assertEqual(redis["spec"]["replicas"], 1)
        self.assertEqual(redis["spec"]["strategy"], {"type": "Recreate"})
        pod = redis["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        self.assertEqual(container["image"], "redis:7.2.5")
        arguments = dict(zip(container["args"][::2], container["args"][1::2]))
        self.assertEqual(arguments["--appendonly"], "yes")
        self.assertEqual(arguments["--maxmemory-policy"], "noeviction")
        self.assertEqual(arguments["--dir"], "/data")
        self.assertEqual(container["volumeMounts"], [{"name": "data", "mountPath": "/data"}])
        self.assertEqual(pod["volumes"], [{"name": "data", "persistentVolumeClaim": {"claimName": "redis-data"}}])
        self.assertEqual(container["securityContext"], manifest("Deployment")["spec"]["template"]["spec"]["containers"][0]["securityContext"])
        self.assertTrue(pod["securityContext"]["runAsNonRoot"])
        self.assertEqual(pod["securityContext"]["seccompProfile"], {"type": "RuntimeDefault"})
        claim = self.program.one("PersistentVolumeClaim", "redis-data").inputs
        self.assertEqual(claim["spec"], {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}})
        self.assertEqual(self.program.one("Service", "redis").inputs["spec"]["ports"], [{"port": 6379, "targetPort": "redis", "name": "redis"}])
        policy = self.program.one("NetworkPolicy", "redis").inputs["spec"]
        self.assertEqual(
            policy["ingress"], [{"from": [{"podSelector": {"matchLabels": {"app": "sluice"}}}], "ports": [{"protocol": "TCP", "port": 6379}]}]
        )

    def test_every_object_passes_kubernetes_validate_strict(self):
        objects = [r.inputs for r in self.program.resources if r.typ.startswith("kubernetes:")]
        self.assertEqual(
            sorted(o["kind"] for o in objects),
            sorted(["ConfigMap", "Secret", "Secret", "Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy",
                    "PersistentVolumeClaim", "Deployment", "Service", "NetworkPolicy"]),
        )
        result = harness.kubernetes_validate(objects)
        output = result.stdout + result.stderr
        self.assertEqual(result.returncode, 0, output)
        self.assertNotIn("WARN", output)
        self.assertEqual(output.count(" passed for resource "), len(objects), output)


class ProgramSettingsTests(unittest.TestCase):
    def test_admin_tokens_namespace_and_replicas(self):
        run = harness.run_program({**harness.PROGRAM_CONFIG, "adminTokens": "tok-a,tok-b", "namespace": "rate", "replicas": 5})
        env = run.one("Secret", "sluice-env-0a1b2c3d")
        self.assertEqual(env.inputs["stringData"]["SLUICE_ADMIN_TOKENS"], "tok-a,tok-b")
        self.assertEqual(run.one("Deployment", "sluice").inputs["spec"]["replicas"], 5)
        for resource in run.resources:
            if resource.typ.startswith("kubernetes:"):
                self.assertEqual(resource.inputs["metadata"].get("namespace"), "rate", resource.name)

    def test_redis_on_an_empty_dir(self):
        run = harness.run_program({**harness.PROGRAM_CONFIG, "redisStorage": "emptyDir"})
        self.assertEqual(run.of_kind("PersistentVolumeClaim"), [])
        pod = run.one("Deployment", "redis").inputs["spec"]["template"]["spec"]
        self.assertEqual(pod["volumes"], [{"name": "data", "emptyDir": {}}])

    def test_an_external_redis_deploys_none(self):
        run = harness.run_program({**harness.PROGRAM_CONFIG, "redisUrl": "redis://redis.shared:6379/3"})
        self.assertEqual([r.inputs["metadata"]["name"] for r in run.of_kind("Deployment")], ["sluice"])
        self.assertEqual(run.of_kind("PersistentVolumeClaim"), [])
        self.assertEqual(yaml.safe_load(run.outputs["config"])["redis"]["url"], "redis://redis.shared:6379/3")

    def test_the_image_is_required_and_never_latest(self):
        config = dict(harness.PROGRAM_CONFIG)
        del config["image"]
        with self.assertRaisesRegex(Exception, "image"):
            harness.run_program(config)
        for image, why in [("registry.example.com/sluice:latest", "latest"), ("registry.example.com/sluice", "no tag"),
                           ("localhost:5000/sluice", "no tag"), ("", "image must be")]:
            with self.subTest(image=image), self.assertRaisesRegex(UsagePlanError, why):
                harness.run_program({**harness.PROGRAM_CONFIG, "image": image})
        digest = "registry.example.com/sluice@sha256:" + "a" * 64
        run = harness.run_program({**harness.PROGRAM_CONFIG, "image": digest})
        self.assertEqual(run.one("Deployment", "sluice").inputs["spec"]["template"]["spec"]["containers"][0]["image"], digest)

    def test_the_key_secret_is_required_and_long(self):
        config = dict(harness.PROGRAM_CONFIG)
        del config["keySecret"]
        with self.assertRaisesRegex(Exception, "keySecret"):
            harness.run_program(config)
        with self.assertRaisesRegex(ValueError, "at least 16 characters"):  # raised inside an apply, wrapped by Pulumi
            harness.run_program({**harness.PROGRAM_CONFIG, "keySecret": "too-short"})


if __name__ == "__main__":
    unittest.main()
