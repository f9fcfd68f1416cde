"""Usage plans and API keys declared as code, with the arguments of Pulumi AWS's
``aws.apigateway.UsagePlan``, ``ApiKey`` and ``UsagePlanKey``, so that a program written for
AWS API Gateway moves over nearly line for line::

    usage_plan = sluice.apigateway.UsagePlan("mlUsagePlan",
        api_stages=[sluice.apigateway.UsagePlanApiStageArgs(api_id="mlApi", stage="prod",
            throttles=[sluice.apigateway.UsagePlanApiStageThrottleArgs(path="/predict/POST", burst_limit=5, rate_limit=10)])],
        throttle_settings={"rate_limit": 2, "burst_limit": 1},
        quota_settings={"limit": 1000, "period": "WEEK", "offset": 2})

These are not cloud resources: they are the plans and keys of Sluice's config file, which
``sluice_pulumi.Sluice`` renders into a ConfigMap (see ``to_config``). Every argument is checked
when it is given; a mistake raises ``UsagePlanError`` (a ``ValueError``) naming the resource
and the argument. ``api_id`` and ``stage`` may be Pulumi outputs (as ``api.id`` and
``stage.stage_name`` are on AWS); they are checked once known.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from typing import Any, Mapping, Optional, Sequence, Union

import pulumi

__all__ = [
    "ApiKey",
    "Catalog",
    "UsagePlan",
    "UsagePlanApiStageArgs",
    "UsagePlanApiStageThrottleArgs",
    "UsagePlanError",
    "UsagePlanKey",
    "UsagePlanQuotaSettingsArgs",
    "UsagePlanThrottleSettingsArgs",
    "default_catalog",
    "reset_default_catalog",
    "route_for_throttle_path",
]


class UsagePlanError(ValueError):
    """A usage plan, API key or binding that Sluice cannot take, and why."""


# MARK: argument types (named as in pulumi_aws.apigateway)


@dataclasses.dataclass(frozen=True)
class UsagePlanThrottleSettingsArgs:
    """The plan's throttle: ``rate_limit`` requests per second (may be fractional) with
    ``burst_limit`` the bucket's size. Sluice: ``throttle: {rate, burst}``."""

    burst_limit: int
    rate_limit: float


@dataclasses.dataclass(frozen=True)
class UsagePlanQuotaSettingsArgs:
    """The plan's quota: ``limit`` requests per ``period`` (DAY, WEEK or MONTH).

    ``offset`` has AWS's meaning: requests subtracted from the limit in the initial period
    (Sluice: ``initial_offset``). ``offset_hours`` is Sluice's own shift of every window's
    start (0-23 hours after 00:00 UTC); AWS has no counterpart.
    """

    limit: int
    period: str
    offset: int = 0
    offset_hours: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class UsagePlanApiStageThrottleArgs:
    """A method throttle of one API stage. ``path`` is AWS's ``/<resource path>/<METHOD>``
    (``/predict/POST``, ``/models/{model}/GET``, ``//GET`` for the root resource); Sluice
    names the same route ``"POST /predict"``."""

    path: str
    burst_limit: int
    rate_limit: float


@dataclasses.dataclass(frozen=True)
class UsagePlanApiStageArgs:
    """An API stage the plan covers (Sluice: the stage ``"<api_id>/<stage>"``), with its
    method throttles."""

    api_id: pulumi.Input[str]
    stage: pulumi.Input[str]
    throttles: Sequence[Union[UsagePlanApiStageThrottleArgs, Mapping[str, Any]]] = ()


# MARK: the catalog


class Catalog:
    """The usage plans, API keys and bindings one Sluice deployment serves.

    Declarations add themselves to the default catalog unless given another. ``Sluice``
    reads a catalog once, when it is created, and closes it: a plan or key declared after
    that would be missing from the deployed config, so it raises instead.
    """

    def __init__(self) -> None:
        self.usage_plans: list[UsagePlan] = []
        self.api_keys: list[ApiKey] = []
        self.usage_plan_keys: list[UsagePlanKey] = []
        self._closed_by: Optional[str] = None

    def _add(self, kind: str, name: str, item: Any, items: list) -> None:
        if self._closed_by is not None:
            raise UsagePlanError(
                f"{kind} {name!r}: declared after {self._closed_by} read the catalog; "
                "declare every usage plan, API key and usage plan key before Sluice(...)"
            )
        if any(existing.resource_name == name for existing in items):
            raise UsagePlanError(f"{kind} {name!r}: declared twice")
        items.append(item)

    def close(self, reader: str) -> None:
        """Marks the catalog read by ``reader``; later declarations raise."""
        self._closed_by = reader

    def to_config(self) -> pulumi.Output[dict]:
        """The ``plans`` and ``api_keys`` sections of Sluice's config, as an output (key
        digests and stage names may be outputs). Raises ``UsagePlanError`` for bindings that
        name an unknown plan or key, or bind one key to two plans."""
        plans_by_id = {plan.id: plan for plan in self.usage_plans}
        keys_by_id = {key.id: key for key in self.api_keys}
        plan_of_key: dict[str, str] = {}
        for binding in self.usage_plan_keys:
            plan = plans_by_id.get(binding.usage_plan_id)
            if plan is None:
                raise UsagePlanError(
                    f"UsagePlanKey {binding.resource_name!r}: usage_plan_id {binding.usage_plan_id!r} names no UsagePlan of this catalog"
                )
            if binding.key_id not in keys_by_id:
                raise UsagePlanError(
                    f"UsagePlanKey {binding.resource_name!r}: key_id {binding.key_id!r} names no ApiKey of this catalog"
                )
            earlier = plan_of_key.get(binding.key_id)
            if earlier is not None and earlier != plan.name:
                raise UsagePlanError(
                    f"UsagePlanKey {binding.resource_name!r}: ApiKey {binding.key_id!r} is already in usage plan {earlier!r}; "
                    "a Sluice key belongs to one plan (give the plans' stages to one plan instead)"
                )
            plan_of_key[binding.key_id] = plan.name
        if not self.usage_plans:
            raise UsagePlanError("no UsagePlan declared: Sluice refuses a config with no plans")
        names = [plan.name for plan in self.usage_plans]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise UsagePlanError(f"two UsagePlans are named {duplicates[0]!r}: plan names are unique")

        plans = {plan.name: plan._section() for plan in self.usage_plans}
        keys = []
        for key in self.api_keys:
            plan_name = plan_of_key.get(key.id)
            if plan_name is None or not key.enabled:
                continue  # AWS refuses a key in no plan, and a disabled one; to Sluice both are unknown.
            keys.append({"key_sha256": key.value_sha256, "plan": plan_name, "name": key.name})
        return pulumi.Output.from_input({"plans": plans, "api_keys": keys}).apply(_checked_config)


_default = Catalog()


def default_catalog() -> Catalog:
    """The catalog declarations join when given none."""
    return _default


def reset_default_catalog() -> Catalog:
    """Starts a new, empty default catalog (for running a program twice in one process, as
    tests do) and returns it."""
    global _default
    _default = Catalog()
    return _default


# MARK: declarations


class UsagePlan:
    """A usage plan, with ``aws.apigateway.UsagePlan``'s arguments.

    ``name`` is the plan's name in Sluice's config (default: ``resource_name``), ``id`` the
    value ``UsagePlanKey(usage_plan_id=...)`` takes (the plan's name). ``description``,
    ``product_code`` and ``tags`` have no Sluice counterpart and are not accepted.
    ``sluice_settings`` adds Sluice's own plan keys (``on_backend_error``, ``headers``,
    ``shadow``, ``routes``), checked by ``sluice check-config``. ``opts`` is accepted for the
    signature's sake and unused: nothing is created in a cloud.
    """

    def __init__(
        self,
        resource_name: str,
        opts: Optional[pulumi.ResourceOptions] = None,
        *,
        api_stages: Optional[Sequence[Union[UsagePlanApiStageArgs, Mapping[str, Any]]]] = None,
        name: Optional[str] = None,
        quota_settings: Optional[Union[UsagePlanQuotaSettingsArgs, Mapping[str, Any]]] = None,
        throttle_settings: Optional[Union[UsagePlanThrottleSettingsArgs, Mapping[str, Any]]] = None,
        sluice_settings: Optional[Mapping[str, Any]] = None,
        catalog: Optional[Catalog] = None,
    ) -> None:
        where = f"UsagePlan {resource_name!r}"
        _require_name(resource_name, where, "resource_name")
        self.resource_name = resource_name
        self.name = name if name is not None else resource_name
        _require_name(self.name, where, "name")
        self.throttle = _throttle(throttle_settings, f"{where}: throttle_settings")
        self.quota = _quota(quota_settings, f"{where}: quota_settings")
        self.stages = _stages(api_stages, f"{where}: api_stages")
        self.extra = dict(sluice_settings or {})
        clash = sorted(set(self.extra) & {"throttle", "quota", "stages"})
        if clash:
            raise UsagePlanError(
                f"{where}: sluice_settings sets {clash[0]!r}; give it as throttle_settings, quota_settings or api_stages"
            )
        (catalog or _default)._add("UsagePlan", resource_name, self, (catalog or _default).usage_plans)

    @property
    def id(self) -> str:
        """What ``UsagePlanKey(usage_plan_id=...)`` names this plan by."""
        return self.name

    def _section(self) -> dict:
        section: dict[str, Any] = {}
        if self.throttle is not None:
            section["throttle"] = self.throttle
        if self.quota is not None:
            section["quota"] = self.quota
        section.update(self.extra)
        if self.stages is not None:
            section["stages"] = self.stages
        return section


class ApiKey:
    """An API key, with ``aws.apigateway.ApiKey``'s ``value``, ``name`` and ``enabled``.

    ``value`` is the raw key (a secret: take it from ``pulumi.Config().require_secret``);
    Sluice's config gets only its SHA-256, and ``Sluice`` puts the raw value in a Kubernetes
    Secret. ``value_sha256`` (hex) declares a key by its digest alone, so the raw key never
    enters Pulumi's state. AWS generates a value when none is given; this program cannot keep
    a generated value between runs, so one of the two is required.
    """

    def __init__(
        self,
        resource_name: str,
        opts: Optional[pulumi.ResourceOptions] = None,
        *,
        value: Optional[pulumi.Input[str]] = None,
        value_sha256: Optional[str] = None,
        name: Optional[str] = None,
        enabled: bool = True,
        catalog: Optional[Catalog] = None,
    ) -> None:
        where = f"ApiKey {resource_name!r}"
        _require_name(resource_name, where, "resource_name")
        self.resource_name = resource_name
        self.name = name if name is not None else resource_name
        _require_name(self.name, where, "name")
        if not isinstance(enabled, bool):
            raise UsagePlanError(f"{where}: enabled must be True or False, not {enabled!r}")
        self.enabled = enabled
        if (value is None) == (value_sha256 is None):
            raise UsagePlanError(
                f"{where}: give exactly one of value (the raw key, e.g. config.require_secret(...)) or value_sha256 (its hex SHA-256)"
            )
        self.value: Optional[pulumi.Output[str]] = None
        if value is not None:
            if isinstance(value, str):
                _check_raw_key(value, where)
            self.value = pulumi.Output.from_input(value)
            # The digest reveals nothing a Redis dump or the ConfigMap may not hold (it is what
            # the config file carries), so it leaves the secret's protection; the value keeps it.
            self.value_sha256: pulumi.Output[str] = pulumi.Output.unsecret(self.value.apply(lambda raw: _digest(raw, where)))
        else:
            if not isinstance(value_sha256, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", value_sha256):
                raise UsagePlanError(f"{where}: value_sha256 must be 64 hex digits, not {value_sha256!r}")
            self.value_sha256 = pulumi.Output.from_input(value_sha256.lower())
        (catalog or _default)._add("ApiKey", resource_name, self, (catalog or _default).api_keys)

    @property
    def id(self) -> str:
        """What ``UsagePlanKey(key_id=...)`` names this key by (its resource name)."""
        return self.resource_name


class UsagePlanKey:
    """Puts an API key in a usage plan, with ``aws.apigateway.UsagePlanKey``'s arguments:
    ``key_id`` (an ``ApiKey`` or its ``id``), ``key_type`` (``"API_KEY"``, the only type) and
    ``usage_plan_id`` (a ``UsagePlan`` or its ``id``)."""

    def __init__(
        self,
        resource_name: str,
        opts: Optional[pulumi.ResourceOptions] = None,
        *,
        key_id: Union[str, ApiKey],
        key_type: str,
        usage_plan_id: Union[str, UsagePlan],
        catalog: Optional[Catalog] = None,
    ) -> None:
        where = f"UsagePlanKey {resource_name!r}"
        _require_name(resource_name, where, "resource_name")
        if key_type != "API_KEY":
            raise UsagePlanError(f"{where}: key_type must be \"API_KEY\", not {key_type!r}")
        self.resource_name = resource_name
        self.key_id = key_id.id if isinstance(key_id, ApiKey) else key_id
        self.usage_plan_id = usage_plan_id.id if isinstance(usage_plan_id, UsagePlan) else usage_plan_id
        if not isinstance(self.key_id, str) or not self.key_id:
            raise UsagePlanError(f"{where}: key_id must be an ApiKey or its id, not {key_id!r}")
        if not isinstance(self.usage_plan_id, str) or not self.usage_plan_id:
            raise UsagePlanError(f"{where}: usage_plan_id must be a UsagePlan or its id, not {usage_plan_id!r}")
        (catalog or _default)._add("UsagePlanKey", resource_name, self, (catalog or _default).usage_plan_keys)


# MARK: AWS method paths and Sluice routes

_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
_PARAMETER = re.compile(r"\{([A-Za-z0-9._-]+)(\+?)\}")


def route_for_throttle_path(path: str) -> str:
    """Sluice's route key for an AWS method-throttle path: ``"/predict/POST"`` →
    ``"POST /predict"``, ``"//GET"`` (the root resource) → ``"GET /"``, ``"/{proxy+}/ANY"`` →
    ``"* /*"``, ``"/*/*"`` (every resource of the stage) → ``"* /*"``, ``"/models/{model}/GET"`` →
    ``"GET /models/{model}"``.

    Raises ``UsagePlanError`` for anything else, saying why.
    """
    if not isinstance(path, str):
        raise UsagePlanError(f"a throttle path is a string like \"/predict/POST\", not {path!r}")
    shape = f"throttle path {path!r}"
    if not path.startswith("/") or path.count("/") < 2:
        if path.startswith("/") and path[1:].upper() in _METHODS | {"ANY"}:
            raise UsagePlanError(f"{shape}: the root resource's methods are written //{path[1:]} (resource path / then /METHOD)")
        raise UsagePlanError(f"{shape}: must be /<resource path>/<METHOD>, like /predict/POST")
    resource, _, method = path.rpartition("/")
    if any(c.isspace() for c in path) or "?" in path or "#" in path:
        raise UsagePlanError(f"{shape}: holds no spaces, query string or fragment")
    method = method.upper()
    if method in ("ANY", "*"):
        method = "*"
    elif method not in _METHODS:
        raise UsagePlanError(f"{shape}: {path.rpartition('/')[2]!r} is not an HTTP method (GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS or ANY)")
    if resource == "/":
        return f"{method} /"
    segments = resource.split("/")[1:]
    out = []
    for index, segment in enumerate(segments):
        if segment == "":
            raise UsagePlanError(f"{shape}: the resource path {resource!r} has an empty segment")
        if segment == "*":
            # AWS's /*/METHOD: every resource of the stage. Sluice's "*" matches one or more
            # segments, so the root path "/" is not covered (sluice import-aws maps it the same way).
            if len(segments) != 1:
                raise UsagePlanError(f"{shape}: \"*\" stands for every resource only as the whole resource path (/*/METHOD)")
            out.append("*")
            continue
        match = _PARAMETER.fullmatch(segment)
        if match:
            if match.group(2):  # {proxy+}: the rest of the path, one or more segments
                if index != len(segments) - 1:
                    raise UsagePlanError(f"{shape}: a greedy parameter {segment} ends the resource path")
                out.append("*")
            else:
                out.append(segment)
        elif "{" in segment or "}" in segment:
            raise UsagePlanError(f"{shape}: a path parameter fills a whole segment, like /{{model}}/")
        else:
            out.append(segment)
    return f"{method} /" + "/".join(out)


# MARK: checks


def _require_name(value: Any, where: str, argument: str) -> None:
    if not isinstance(value, str) or not value or len(value.encode()) > 128 or not value.isprintable():
        raise UsagePlanError(f"{where}: {argument} must be 1-128 printable characters, not {value!r}")


def _settings(value: Any, cls: type, where: str) -> dict:
    """A dict of ``cls``'s fields from a dict or a ``cls``, unknown and missing fields refused."""
    fields = [f.name for f in dataclasses.fields(cls)]
    if isinstance(value, cls):
        return {name: getattr(value, name) for name in fields}
    if not isinstance(value, Mapping):
        raise UsagePlanError(f"{where}: must be a dict or {cls.__name__}, not {type(value).__name__}")
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise UsagePlanError(f"{where}: unknown setting {unknown[0]!r} (known: {', '.join(fields)})")
    required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
    missing = [name for name in required if name not in value]
    if missing:
        raise UsagePlanError(f"{where}: {missing[0]} is required")
    return dict(value)


def _rate(value: Any, where: str) -> Union[int, float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise UsagePlanError(f"{where}: rate_limit must be a positive number of requests per second, not {value!r}")
    return int(value) if float(value).is_integer() else float(value)


def _burst(value: Any, where: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsagePlanError(f"{where}: burst_limit must be a whole number of requests, at least 1, not {value!r}")
    return value


def _throttle(value: Any, where: str) -> Optional[dict]:
    if value is None:
        return None
    settings = _settings(value, UsagePlanThrottleSettingsArgs, where)
    return {"rate": _rate(settings["rate_limit"], where), "burst": _burst(settings["burst_limit"], where)}


def _quota(value: Any, where: str) -> Optional[dict]:
    if value is None:
        return None
    settings = _settings(value, UsagePlanQuotaSettingsArgs, where)
    limit = settings["limit"]
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise UsagePlanError(f"{where}: limit must be a whole number of requests, at least 1, not {limit!r}")
    period = settings["period"]
    if not isinstance(period, str) or period.upper() not in ("DAY", "WEEK", "MONTH"):
        raise UsagePlanError(f"{where}: period must be DAY, WEEK or MONTH, not {period!r}")
    quota: dict[str, Any] = {"limit": limit, "period": period.lower()}
    offset_hours = settings.get("offset_hours")
    if offset_hours is not None:
        if isinstance(offset_hours, bool) or not isinstance(offset_hours, int) or not 0 <= offset_hours <= 23:
            raise UsagePlanError(f"{where}: offset_hours must be a whole number of hours, 0-23, not {offset_hours!r}")
        quota["offset_hours"] = offset_hours
    offset = settings.get("offset", 0)
    if offset is None:
        offset = 0
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= limit:
        raise UsagePlanError(
            f"{where}: offset (requests subtracted in the initial period) must be a whole number from 0 to limit ({limit}), not {offset!r}"
        )
    if offset:
        quota["initial_offset"] = offset
    return quota


def _stages(value: Any, where: str) -> Optional[list]:
    """One entry per stage (``api_id``, ``stage``, its ``routes``), keyed by ``"<api_id>/<stage>"``
    only in ``_checked_config``, once outputs are known: an output is no dict key."""
    if value is None:
        return None
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise UsagePlanError(f"{where}: must be a list of UsagePlanApiStageArgs or dicts")
    if not value:
        raise UsagePlanError(f"{where}: list at least one stage, or leave api_stages out to cover every stage")
    entries = []
    for index, item in enumerate(value):
        here = f"{where}[{index}]"
        settings = _settings(item, UsagePlanApiStageArgs, here)
        throttles = settings.get("throttles") or ()
        if isinstance(throttles, (str, bytes, Mapping)) or not isinstance(throttles, Sequence):
            raise UsagePlanError(f"{here}: throttles must be a list of UsagePlanApiStageThrottleArgs or dicts")
        routes: dict[str, dict] = {}
        for t_index, throttle in enumerate(throttles):
            there = f"{here}.throttles[{t_index}]"
            t = _settings(throttle, UsagePlanApiStageThrottleArgs, there)
            try:
                route = route_for_throttle_path(t["path"])
            except UsagePlanError as error:
                raise UsagePlanError(f"{there}: {error}") from None
            if route in routes:
                raise UsagePlanError(f"{there}: a second throttle for {t['path']!r} ({route}) in the same stage")
            routes[route] = {"rate": _rate(t["rate_limit"], there), "burst": _burst(t["burst_limit"], there)}
        for part in ("api_id", "stage"):
            if not isinstance(settings[part], (str, pulumi.Output)):
                raise UsagePlanError(f"{here}: {part} must be a string or a Pulumi output, not {settings[part]!r}")
            if isinstance(settings[part], str):
                _check_stage_part(settings[part], f"{here}: {part}")
        entries.append({"where": here, "api_id": settings["api_id"], "stage": settings["stage"], "routes": routes})
    return entries


def _check_stage_part(text: Any, where: str) -> None:
    if not isinstance(text, str) or not text or "/" in text or not text.isprintable() or any(c.isspace() for c in text):
        raise UsagePlanError(f"{where} must be a non-empty name without '/', spaces or control characters, not {text!r}")


def _check_raw_key(raw: Any, where: str) -> None:
    if not isinstance(raw, str) or not 1 <= len(raw.encode()) <= 256:
        raise UsagePlanError(f"{where}: value must be a key of 1-256 bytes")


def _digest(raw: Any, where: str) -> str:
    _check_raw_key(raw, where)
    return hashlib.sha256(raw.encode()).hexdigest()


def _checked_config(config: dict) -> dict:
    """Turns each plan's stage entries (outputs now resolved) into ``stages`` keyed by
    ``"<api_id>/<stage>"``, refusing a stage named twice."""
    for plan_name, plan in config["plans"].items():
        entries = plan.get("stages")
        if entries is None:
            continue
        stages: dict[str, dict] = {}
        for entry in entries:
            _check_stage_part(entry["api_id"], f"{entry['where']}: api_id")
            _check_stage_part(entry["stage"], f"{entry['where']}: stage")
            key = f"{entry['api_id']}/{entry['stage']}"
            if key in stages:
                raise UsagePlanError(f"{entry['where']}: the stage {key!r} is listed twice")
            stages[key] = {"routes": entry["routes"]} if entry["routes"] else {}
        plan["stages"] = stages
    return config
