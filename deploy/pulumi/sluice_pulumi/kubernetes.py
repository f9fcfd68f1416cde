"""Sluice and its Redis on Kubernetes, as in the tested manifest deploy/kubernetes/sluice.yaml
(same ports, probes, security settings, resources, PodDisruptionBudget and NetworkPolicy),
with the config file rendered from a catalog of usage plans and keys (``apigateway``).

Resources (names as Kubernetes sees them):

- ConfigMap ``sluice-config-<suffix>``: ``sluice.yaml``, the rendered config; keys appear only
  as ``key_sha256``.
- Secret ``sluice-env-<suffix>``: ``SLUICE_KEY_SECRET`` (and ``SLUICE_ADMIN_TOKENS`` when
  given), read by Sluice through ``envFrom``.
- Secret ``sluice-api-keys-<suffix>``: the raw value of every key declared with one, by the
  ApiKey's name, for handing keys to their users; Sluice does not read it.
- Deployment and Service ``sluice`` (port 8080), PodDisruptionBudget and NetworkPolicy
  ``sluice`` (8080 open, the admin port 9090 only to Prometheus and operators).
- Redis (unless an external ``redis_url`` is given): Deployment, Service and NetworkPolicy
  ``redis`` (only Sluice's pods reach 6379), append-only file on a PersistentVolumeClaim
  ``redis-data`` (or an emptyDir, see ``redis_storage``), ``maxmemory-policy noeviction``.

The ConfigMap and Secrets are auto-named: a change to the plans or keys makes a new ConfigMap,
and pointing the Deployment at it rolls the pods (Sluice reads its file at start; the
ConfigMap's in-place updates would need a SIGHUP). Services and Deployments keep fixed names,
so gateways reach ``sluice:8080`` and Sluice reaches ``redis:6379``.
"""

from __future__ import annotations

import re
from typing import Any, Optional

import pulumi
import pulumi_kubernetes as k8s
import yaml

from .apigateway import Catalog, UsagePlanError, default_catalog

__all__ = ["Sluice", "check_image", "render_config"]

SLUICE_PORT = 8080
ADMIN_PORT = 9090
REDIS_PORT = 6379
SLUICE_UID = 10001  # the image's sluice user (deploy/docker/Dockerfile)
REDIS_UID = 999  # the official redis image's redis user
CONFIG_DIR = "/etc/sluice"
CONFIG_FILE = "sluice.yaml"


def check_image(image: Any, what: str = "image") -> str:
    """Returns ``image`` when it names a tag (not ``latest``) or a digest; raises
    ``UsagePlanError`` otherwise. A moving tag would make two replicas run different code."""
    if not isinstance(image, str) or not image or any(c.isspace() for c in image):
        raise UsagePlanError(f"{what} must be an image reference like registry.example.com/sluice:0.1.0, not {image!r}")
    if re.search(r"@sha256:[0-9a-f]{64}$", image):
        return image
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:
        raise UsagePlanError(f"{what} {image!r} has no tag: name one (registry/sluice:0.1.0) or a digest (@sha256:...)")
    if tag == "latest":
        raise UsagePlanError(f"{what} {image!r}: 'latest' moves; name a version or a digest")
    return image


def render_config(catalog_config: dict, redis_url: str, log_level: str = "info") -> str:
    """Sluice's config file: the listeners as in the tested manifest, Redis, logging, and the
    catalog's ``plans`` and ``api_keys``."""
    config = {
        "redis": {"url": redis_url, "timeout_ms": 100},
        "server": {"host": "0.0.0.0", "port": SLUICE_PORT},
        # /metrics and /admin/v1: not exposed by the Service, fenced by the NetworkPolicy.
        "admin": {"host": "0.0.0.0", "port": ADMIN_PORT},
        "logging": {"level": log_level},
        "plans": catalog_config["plans"],
        "api_keys": catalog_config["api_keys"],
    }
    body = yaml.safe_dump(config, sort_keys=False, default_flow_style=False, allow_unicode=False, width=1000)
    return "# Rendered by deploy/pulumi (sluice_pulumi): change the program, not this file.\n" + body


def _checked_key_secret(secret: Any) -> str:
    if not isinstance(secret, str) or len(secret) < 16:
        raise UsagePlanError("key_secret (SLUICE_KEY_SECRET) is required, at least 16 characters: see deploy/pulumi's README section")
    return secret


def _hardened_container() -> dict:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
    }


class Sluice(pulumi.ComponentResource):
    """Sluice (and, unless ``redis_url`` is given, a Redis) on Kubernetes.

    :param image: Sluice's image, with a version tag or a digest (required; ``latest`` and
        untagged references are refused).
    :param key_secret: ``SLUICE_KEY_SECRET``, the same on every replica (a secret input).
    :param admin_tokens: ``SLUICE_ADMIN_TOKENS``, comma-separated bearer tokens of the admin API;
        without them the admin API answers 404 (``/metrics`` still works).
    :param catalog: the usage plans and keys to serve (default: the default catalog).
    :param replicas: Sluice replicas (3).
    :param namespace: where everything goes (default: the provider's namespace).
    :param redis_url: an existing Redis to use; then no Redis is deployed.
    :param redis_image: the Redis image (a version tag or digest).
    :param redis_storage: ``"persistentVolume"`` (a ReadWriteOnce claim of ``redis_storage_size``)
        or ``"emptyDir"``: state, runtime keys included, then lasts only as long as the pod.
    """

    def __init__(
        self,
        resource_name: str,
        *,
        image: str,
        key_secret: pulumi.Input[str],
        admin_tokens: Optional[pulumi.Input[str]] = None,
        catalog: Optional[Catalog] = None,
        replicas: int = 3,
        namespace: Optional[str] = None,
        log_level: str = "info",
        redis_url: Optional[str] = None,
        redis_image: str = "redis:7.2.5",
        redis_storage: str = "persistentVolume",
        redis_storage_size: str = "1Gi",
        redis_storage_class: Optional[str] = None,
        redis_maxmemory: str = "400mb",
        opts: Optional[pulumi.ResourceOptions] = None,
    ) -> None:
        check_image(image)
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
            raise UsagePlanError(f"replicas must be a whole number, at least 1, not {replicas!r}")
        if not isinstance(key_secret, pulumi.Output):
            _checked_key_secret(key_secret)
        if redis_url is None:
            check_image(redis_image, "redis_image")
            if redis_storage not in ("persistentVolume", "emptyDir"):
                raise UsagePlanError(f"redis_storage must be persistentVolume or emptyDir, not {redis_storage!r}")
        elif not isinstance(redis_url, str) or not re.match(r"rediss?://", redis_url):
            raise UsagePlanError(f"redis_url must be a redis:// URL, not {redis_url!r}")
        super().__init__("sluice:kubernetes:Sluice", resource_name, None, opts)
        catalog = catalog or default_catalog()
        catalog_config = catalog.to_config()
        catalog.close(f"Sluice {resource_name!r}")

        child = pulumi.ResourceOptions(parent=self)
        labels = {"app": "sluice"}
        redis_labels = {"app": "redis"}

        def meta(name: Optional[str] = None, **extra: Any) -> dict:
            m: dict[str, Any] = dict(extra)
            if name is not None:
                m["name"] = name
            if namespace is not None:
                m["namespace"] = namespace
            return m

        url = redis_url or f"redis://redis:{REDIS_PORT}/0"
        self.config_text: pulumi.Output[str] = catalog_config.apply(lambda c: render_config(c, url, log_level))
        self.config_map = k8s.core.v1.ConfigMap(
            f"{resource_name}-config",
            metadata=meta(labels=labels),
            data={CONFIG_FILE: self.config_text},
            opts=child,
        )
        env = {"SLUICE_KEY_SECRET": pulumi.Output.secret(key_secret).apply(_checked_key_secret)}
        if admin_tokens is not None:
            env["SLUICE_ADMIN_TOKENS"] = pulumi.Output.secret(admin_tokens)
        self.env_secret = k8s.core.v1.Secret(
            f"{resource_name}-env", metadata=meta(labels=labels), type="Opaque", string_data=env, opts=child
        )
        raw_keys = {key.name: key.value for key in catalog.api_keys if key.value is not None}
        self.api_keys_secret = k8s.core.v1.Secret(
            f"{resource_name}-api-keys",
            metadata=meta(labels=labels),
            type="Opaque",
            string_data={name: pulumi.Output.secret(value) for name, value in raw_keys.items()},
            opts=child,
        )

        self.deployment = k8s.apps.v1.Deployment(
            f"{resource_name}-deployment",
            metadata=meta("sluice", labels=labels),
            spec={
                "replicas": replicas,
                "selector": {"match_labels": labels},
                "template": {
                    "metadata": {
                        "labels": labels,
                        "annotations": {
                            "prometheus.io/scrape": "true",
                            "prometheus.io/port": str(ADMIN_PORT),
                            "prometheus.io/path": "/metrics",
                        },
                    },
                    "spec": {
                        "automount_service_account_token": False,  # Sluice never calls the Kubernetes API
                        "security_context": {
                            "run_as_non_root": True,
                            "run_as_user": SLUICE_UID,
                            "run_as_group": SLUICE_UID,
                            "seccomp_profile": {"type": "RuntimeDefault"},
                        },
                        "containers": [
                            {
                                "name": "sluice",
                                "image": image,
                                "image_pull_policy": "IfNotPresent",
                                "args": ["serve", "--config", f"{CONFIG_DIR}/{CONFIG_FILE}"],
                                "ports": [
                                    {"container_port": SLUICE_PORT, "name": "http"},
                                    {"container_port": ADMIN_PORT, "name": "admin"},
                                ],
                                "env_from": [{"secret_ref": {"name": self.env_secret.metadata.name}}],
                                "volume_mounts": [{"name": "config", "mount_path": CONFIG_DIR, "read_only": True}],
                                "security_context": _hardened_container(),  # Sluice writes nothing: logs go to stdout
                                "readiness_probe": {"http_get": {"path": "/readyz", "port": "http"}, "period_seconds": 5},
                                "liveness_probe": {"http_get": {"path": "/healthz", "port": "http"}, "period_seconds": 10},
                                # No CPU limit on purpose: CFS throttling would add its pauses to every
                                # decision's latency (as in deploy/kubernetes/sluice.yaml).
                                "resources": {"requests": {"cpu": "500m", "memory": "96Mi"}, "limits": {"memory": "256Mi"}},
                            }
                        ],
                        "volumes": [{"name": "config", "config_map": {"name": self.config_map.metadata.name}}],
                    },
                },
            },
            opts=child,
        )
        self.service = k8s.core.v1.Service(
            f"{resource_name}-service",
            metadata=meta("sluice", labels=labels),
            spec={"selector": labels, "ports": [{"port": SLUICE_PORT, "target_port": "http", "name": "http"}]},
            opts=child,
        )
        self.disruption_budget = k8s.policy.v1.PodDisruptionBudget(
            f"{resource_name}-pdb",
            metadata=meta("sluice", labels=labels),
            spec={"max_unavailable": 1, "selector": {"match_labels": labels}},
            opts=child,
        )
        self.network_policy = k8s.networking.v1.NetworkPolicy(
            f"{resource_name}-network-policy",
            metadata=meta("sluice", labels=labels),
            spec={
                "pod_selector": {"match_labels": labels},
                "policy_types": ["Ingress"],
                "ingress": [
                    {"ports": [{"protocol": "TCP", "port": SLUICE_PORT}]},
                    {
                        "from_": [
                            {
                                "namespace_selector": {"match_labels": {"kubernetes.io/metadata.name": "monitoring"}},
                                "pod_selector": {"match_labels": {"app.kubernetes.io/name": "prometheus"}},
                            },
                            {
                                "namespace_selector": {"match_labels": {"sluice-admin-access": "true"}},
                                "pod_selector": {"match_labels": {"sluice-admin-access": "true"}},
                            },
                        ],
                        "ports": [{"protocol": "TCP", "port": ADMIN_PORT}],
                    },
                ],
            },
            opts=child,
        )

        self.redis_deployment = None
        if redis_url is None:
            if redis_storage == "persistentVolume":
                claim_spec: dict[str, Any] = {
                    "access_modes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": redis_storage_size}},
                }
                if redis_storage_class is not None:
                    claim_spec["storage_class_name"] = redis_storage_class
                self.redis_claim = k8s.core.v1.PersistentVolumeClaim(
                    f"{resource_name}-redis-data", metadata=meta("redis-data", labels=redis_labels), spec=claim_spec, opts=child
                )
                data_volume = {"name": "data", "persistent_volume_claim": {"claim_name": self.redis_claim.metadata.name}}
            else:
                # emptyDir: the append-only file survives a container restart but not the pod's
                # rescheduling; with it go every limit's state and the runtime API keys.
                data_volume = {"name": "data", "empty_dir": {}}
            self.redis_deployment = k8s.apps.v1.Deployment(
                f"{resource_name}-redis",
                metadata=meta("redis", labels=redis_labels),
                spec={
                    "replicas": 1,
                    # Never two Redis on one append-only file: the old pod goes before the new one starts.
                    "strategy": {"type": "Recreate"},
                    "selector": {"match_labels": redis_labels},
                    "template": {
                        "metadata": {"labels": redis_labels},
                        "spec": {
                            "automount_service_account_token": False,
                            "security_context": {
                                "run_as_non_root": True,
                                "run_as_user": REDIS_UID,
                                "run_as_group": REDIS_UID,
                                "fs_group": REDIS_UID,  # the volume is writable by the redis user
                                "seccomp_profile": {"type": "RuntimeDefault"},
                            },
                            "containers": [
                                {
                                    "name": "redis",
                                    "image": redis_image,
                                    "image_pull_policy": "IfNotPresent",
                                    # The image's entrypoint is skipped: it would only drop root, and
                                    # the pod never has it.
                                    "command": ["redis-server"],
                                    "args": [
                                        "--dir", "/data",
                                        "--appendonly", "yes",
                                        "--appendfsync", "everysec",
                                        # An evicted bucket is an over-admission, an evicted runtime
                                        # key a lost customer (Sluice warns otherwise).
                                        "--maxmemory-policy", "noeviction",
                                        # Below the container's limit: a full Redis refuses writes
                                        # (plans then decide, on_backend_error) instead of being killed.
                                        "--maxmemory", redis_maxmemory,
                                    ],
                                    "ports": [{"container_port": REDIS_PORT, "name": "redis"}],
                                    "volume_mounts": [{"name": "data", "mount_path": "/data"}],
                                    "security_context": _hardened_container(),  # Redis writes only /data
                                    "readiness_probe": {
                                        "exec_": {"command": ["redis-cli", "ping"]},
                                        "period_seconds": 5,
                                    },
                                    "liveness_probe": {"tcp_socket": {"port": "redis"}, "period_seconds": 10},
                                    "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
                                }
                            ],
                            "volumes": [data_volume],
                        },
                    },
                },
                opts=child,
            )
            self.redis_service = k8s.core.v1.Service(
                f"{resource_name}-redis-service",
                metadata=meta("redis", labels=redis_labels),
                spec={"selector": redis_labels, "ports": [{"port": REDIS_PORT, "target_port": "redis", "name": "redis"}]},
                opts=child,
            )
            self.redis_network_policy = k8s.networking.v1.NetworkPolicy(
                f"{resource_name}-redis-network-policy",
                metadata=meta("redis", labels=redis_labels),
                spec={
                    "pod_selector": {"match_labels": redis_labels},
                    "policy_types": ["Ingress"],
                    # Only Sluice's pods (of this namespace) reach Redis.
                    "ingress": [
                        {"from_": [{"pod_selector": {"match_labels": labels}}], "ports": [{"protocol": "TCP", "port": REDIS_PORT}]}
                    ],
                },
                opts=child,
            )

        self.register_outputs(
            {
                "service": self.service.metadata.name,
                "config_map": self.config_map.metadata.name,
                "config": self.config_text,
            }
        )
