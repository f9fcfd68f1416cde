"""The usage-plan helper (sluice_pulumi.apigateway): AWS's arguments as dicts and as Args
types, method paths to Sluice routes, and clear errors for what Sluice cannot take."""

import hashlib
import unittest

import pulumi
import yaml

import harness
from sluice_pulumi import apigateway as ag
from sluice_pulumi import render_config
from sluice_pulumi.apigateway import UsagePlanError, route_for_throttle_path


def rendered(declare) -> dict:
    """The plans and keys ``declare(catalog)`` declares, as the config's sections."""
    out = {}

    def program():
        catalog = ag.Catalog()
        declare(catalog)
        return {"config": catalog.to_config()}

    out = harness.run(program).outputs
    return out["config"]


class RoutePathTests(unittest.TestCase):
    cases = {
        "/predict/POST": "POST /predict",
        "/predict/post": "POST /predict",
        "//GET": "GET /",
        "/v1/models/{model}/predict/POST": "POST /v1/models/{model}/predict",
        "/files/{proxy+}/GET": "GET /files/*",
        "/{proxy+}/ANY": "* /*",
        "/*/*": "* /*",
        "/*/GET": "GET /*",
        "/embeddings/ANY": "* /embeddings",
        "/embeddings/*": "* /embeddings",
        "/a.b/c-d/e_f/DELETE": "DELETE /a.b/c-d/e_f",
        "/health/HEAD": "HEAD /health",
        "/items/{id}/PATCH": "PATCH /items/{id}",
        "/x/OPTIONS": "OPTIONS /x",
        "/x/PUT": "PUT /x",
    }

    def test_paths_map_to_routes(self):
        for path, route in self.cases.items():
            with self.subTest(path=path):
                self.assertEqual(route_for_throttle_path(path), route)

    def test_every_mapped_route_passes_check_config(self):
        routes = {route: {"rate": 1, "burst": 1} for route in set(self.cases.values())}
        text = render_config(
            {
                "plans": {"p": {"throttle": {"rate": 1, "burst": 1}, "stages": {"api/prod": {"routes": routes}}}},
                "api_keys": [{"key_sha256": "0" * 64, "plan": "p"}],
            },
            "redis://127.0.0.1:6379/0",
        )
        result = harness.check_config(text)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_bad_paths_say_why(self):
        cases = {
            "predict/POST": "must be /<resource path>/<METHOD>",
            "/POST": "root resource's methods are written //POST",
            "/predict": "must be /<resource path>/<METHOD>",
            "": "must be /<resource path>/<METHOD>",
            "/predict/FETCH": "'FETCH' is not an HTTP method",
            "/predict/": "'' is not an HTTP method",
            "/predict//POST": "empty segment",
            "/a/*/GET": "only as the whole resource path",
            "/{proxy+}/more/GET": "greedy parameter {proxy+} ends the resource path",
            "/pre{x}/GET": "fills a whole segment",
            "/a b/GET": "no spaces",
            "/a?b=1/GET": "query string",
        }
        for path, message in cases.items():
            with self.subTest(path=path), self.assertRaises(UsagePlanError) as raised:
                route_for_throttle_path(path)
            self.assertIn(message, str(raised.exception))
            self.assertIn(repr(path), str(raised.exception))
        with self.assertRaisesRegex(UsagePlanError, "a throttle path is a string"):
            route_for_throttle_path(42)


class UsagePlanTests(unittest.TestCase):
    aws_program_plan = {
        "mlUsagePlan": {
            "throttle": {"rate": 2, "burst": 1},
            "quota": {"limit": 1000, "period": "week", "initial_offset": 2},
            "stages": {"mlApi/prod": {"routes": {"POST /predict": {"rate": 10, "burst": 5}}}},
        }
    }

    def test_args_types_and_dicts_render_the_same(self):
        def with_types(catalog):
            ag.UsagePlan("mlUsagePlan",
                api_stages=[ag.UsagePlanApiStageArgs(api_id="mlApi", stage="prod",
                    throttles=[ag.UsagePlanApiStageThrottleArgs(path="/predict/POST", burst_limit=5, rate_limit=10)])],
                throttle_settings=ag.UsagePlanThrottleSettingsArgs(rate_limit=2, burst_limit=1),
                quota_settings=ag.UsagePlanQuotaSettingsArgs(limit=1000, period="WEEK", offset=2),
                catalog=catalog)

        def with_dicts(catalog):
            ag.UsagePlan("mlUsagePlan",
                api_stages=[{"api_id": "mlApi", "stage": "prod",
                    "throttles": [{"path": "/predict/POST", "burst_limit": 5, "rate_limit": 10}]}],
                throttle_settings={"rate_limit": 2, "burst_limit": 1},
                quota_settings={"limit": 1000, "period": "WEEK", "offset": 2},
                catalog=catalog)

        self.assertEqual(rendered(with_types)["plans"], self.aws_program_plan)
        self.assertEqual(rendered(with_dicts)["plans"], self.aws_program_plan)

    def test_outputs_name_stages(self):
        def declare(catalog):
            ag.UsagePlan("p", catalog=catalog, api_stages=[
                {"api_id": pulumi.Output.from_input("mlApi"), "stage": pulumi.Output.secret("prod")},
                {"api_id": "mlApi", "stage": "dev", "throttles": []},
            ])

        self.assertEqual(rendered(declare)["plans"], {"p": {"stages": {"mlApi/prod": {}, "mlApi/dev": {}}}})

    def test_a_stage_output_with_a_slash_is_refused_once_known(self):
        def declare(catalog):
            ag.UsagePlan("p", catalog=catalog, api_stages=[{"api_id": pulumi.Output.from_input("ml/Api"), "stage": "prod"}])

        with self.assertRaisesRegex(UsagePlanError, r"api_stages\[0\]: api_id must be a non-empty name without '/'"):
            rendered(declare)

    def test_quota_details(self):
        def declare(catalog):
            ag.UsagePlan("none", catalog=catalog, quota_settings={"limit": 5, "period": "DAY"})
            ag.UsagePlan("zero", catalog=catalog, quota_settings={"limit": 5, "period": "month", "offset": 0})
            ag.UsagePlan("all", catalog=catalog, quota_settings={"limit": 5, "period": "MONTH", "offset": 5, "offset_hours": 23})
            ag.UsagePlan("fractional", catalog=catalog, throttle_settings={"rate_limit": 0.5, "burst_limit": 3.0})

        plans = rendered(declare)["plans"]
        self.assertEqual(plans["none"], {"quota": {"limit": 5, "period": "day"}})
        self.assertEqual(plans["zero"], {"quota": {"limit": 5, "period": "month"}})
        self.assertEqual(plans["all"], {"quota": {"limit": 5, "period": "month", "offset_hours": 23, "initial_offset": 5}})
        self.assertEqual(plans["fractional"], {"throttle": {"rate": 0.5, "burst": 3}})

    def test_sluice_settings_and_names(self):
        def declare(catalog):
            ag.UsagePlan("resource", name="ml-basic", catalog=catalog, throttle_settings={"rate_limit": 1, "burst_limit": 1},
                         sluice_settings={"on_backend_error": "allow", "headers": ["legacy"]})

        self.assertEqual(
            rendered(declare)["plans"],
            {"ml-basic": {"throttle": {"rate": 1, "burst": 1}, "on_backend_error": "allow", "headers": ["legacy"]}},
        )

    def test_keys(self):
        digest = hashlib.sha256(b"other-key").hexdigest()

        def declare(catalog):
            plan = ag.UsagePlan("p", catalog=catalog, throttle_settings={"rate_limit": 1, "burst_limit": 1})
            a = ag.ApiKey("a", value=pulumi.Output.secret("key-a"), catalog=catalog)
            b = ag.ApiKey("b", value_sha256=digest.upper(), name="team b", catalog=catalog)
            off = ag.ApiKey("off", value="key-off", enabled=False, catalog=catalog)
            ag.ApiKey("loose", value="key-loose", catalog=catalog)
            ag.UsagePlanKey("ak", key_id=a.id, key_type="API_KEY", usage_plan_id=plan.id, catalog=catalog)
            ag.UsagePlanKey("bk", key_id=b, key_type="API_KEY", usage_plan_id=plan, catalog=catalog)
            ag.UsagePlanKey("ok", key_id=off.id, key_type="API_KEY", usage_plan_id="p", catalog=catalog)

        self.assertEqual(
            rendered(declare)["api_keys"],
            [
                {"key_sha256": hashlib.sha256(b"key-a").hexdigest(), "plan": "p", "name": "a"},
                {"key_sha256": digest, "plan": "p", "name": "team b"},
            ],
        )

    def test_the_rendered_file_passes_check_config(self):
        def declare(catalog):
            plan = ag.UsagePlan("p", catalog=catalog, throttle_settings={"rate_limit": 1, "burst_limit": 1},
                quota_settings={"limit": 10, "period": "DAY", "offset": 10, "offset_hours": 2},
                api_stages=[{"api_id": "a", "stage": "s", "throttles": [{"path": "/{proxy+}/ANY", "rate_limit": 0.5, "burst_limit": 2}]}],
                sluice_settings={"on_backend_error": "allow"})
            key = ag.ApiKey("k", value="k-1", catalog=catalog)
            ag.UsagePlanKey("pk", key_id=key.id, key_type="API_KEY", usage_plan_id=plan.id, catalog=catalog)

        result = harness.check_config(render_config(rendered(declare), "redis://127.0.0.1:6379/0"))
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)


class InvalidInputTests(unittest.TestCase):
    def refused(self, message, declare):
        with self.assertRaises(UsagePlanError) as raised:
            rendered(declare)
        self.assertIn(message, str(raised.exception))

    def test_plan_arguments(self):
        cases = [
            ({"throttle_settings": {"rate_limit": 2}}, "UsagePlan 'p': throttle_settings: burst_limit is required"),
            ({"throttle_settings": {"rate": 2, "burst": 1}}, "throttle_settings: unknown setting 'burst' (known: burst_limit, rate_limit)"),
            ({"throttle_settings": {"rate_limit": 0, "burst_limit": 1}}, "rate_limit must be a positive number"),
            ({"throttle_settings": {"rate_limit": float("inf"), "burst_limit": 1}}, "rate_limit must be a positive number"),
            ({"throttle_settings": {"rate_limit": "2", "burst_limit": 1}}, "rate_limit must be a positive number"),
            ({"throttle_settings": {"rate_limit": 2, "burst_limit": 1.5}}, "burst_limit must be a whole number"),
            ({"throttle_settings": {"rate_limit": 2, "burst_limit": True}}, "burst_limit must be a whole number"),
            ({"throttle_settings": {"rate_limit": 2, "burst_limit": 0}}, "burst_limit must be a whole number of requests, at least 1"),
            ({"throttle_settings": [2, 1]}, "throttle_settings: must be a dict or UsagePlanThrottleSettingsArgs, not list"),
            ({"quota_settings": {"limit": 10, "period": "YEAR"}}, "period must be DAY, WEEK or MONTH, not 'YEAR'"),
            ({"quota_settings": {"limit": 0, "period": "DAY"}}, "limit must be a whole number of requests, at least 1"),
            ({"quota_settings": {"limit": 10, "period": "DAY", "offset": 11}}, "offset (requests subtracted in the initial period) must be a whole number from 0 to limit (10), not 11"),
            ({"quota_settings": {"limit": 10, "period": "DAY", "offset": -1}}, "from 0 to limit (10), not -1"),
            ({"quota_settings": {"limit": 10, "period": "DAY", "offset_hours": 24}}, "offset_hours must be a whole number of hours, 0-23"),
            ({"quota_settings": {"period": "DAY"}}, "quota_settings: limit is required"),
            ({"api_stages": []}, "api_stages: list at least one stage, or leave api_stages out"),
            ({"api_stages": {"api_id": "a", "stage": "s"}}, "api_stages: must be a list"),
            ({"api_stages": [{"api_id": "a"}]}, "api_stages[0]: stage is required"),
            ({"api_stages": [{"api_id": "a", "stage": "s", "throtles": []}]}, "api_stages[0]: unknown setting 'throtles'"),
            ({"api_stages": [{"api_id": "a/b", "stage": "s"}]}, "api_stages[0]: api_id must be a non-empty name without '/'"),
            ({"api_stages": [{"api_id": "a", "stage": ""}]}, "api_stages[0]: stage must be a non-empty name"),
            ({"api_stages": [{"api_id": 7, "stage": "s"}]}, "api_stages[0]: api_id must be a string or a Pulumi output"),
            ({"api_stages": [{"api_id": "a", "stage": "s", "throttles": [{"path": "/x/GET", "rate_limit": 1}]}]},
             "api_stages[0].throttles[0]: burst_limit is required"),
            ({"api_stages": [{"api_id": "a", "stage": "s", "throttles": [{"path": "/x/GOT", "rate_limit": 1, "burst_limit": 1}]}]},
             "api_stages[0].throttles[0]: throttle path '/x/GOT': 'GOT' is not an HTTP method"),
            ({"api_stages": [{"api_id": "a", "stage": "s", "throttles": [
                {"path": "/x/GET", "rate_limit": 1, "burst_limit": 1}, {"path": "/x/get", "rate_limit": 2, "burst_limit": 2}]}]},
             "api_stages[0].throttles[1]: a second throttle for '/x/get' (GET /x) in the same stage"),
            ({"sluice_settings": {"quota": {}}}, "sluice_settings sets 'quota'; give it as throttle_settings, quota_settings or api_stages"),
            ({"name": ""}, "UsagePlan 'p': name must be 1-128 printable characters"),
        ]
        for arguments, message in cases:
            with self.subTest(arguments=arguments), self.assertRaises(UsagePlanError) as raised:
                ag.UsagePlan("p", catalog=ag.Catalog(), **arguments)
            self.assertIn(message, str(raised.exception))
        with self.assertRaises(TypeError):
            ag.UsagePlan("p", catalog=ag.Catalog(), product_code="x")

    def test_a_stage_listed_twice(self):
        self.refused("api_stages[1]: the stage 'a/s' is listed twice", lambda c: ag.UsagePlan(
            "p", catalog=c, api_stages=[{"api_id": "a", "stage": "s"}, {"api_id": "a", "stage": "s"}]))

    def test_keys_and_bindings(self):
        catalog = ag.Catalog()
        for arguments, message in [
            ({}, "ApiKey 'k': give exactly one of value"),
            ({"value": "v", "value_sha256": "0" * 64}, "give exactly one of value"),
            ({"value_sha256": "xyz"}, "value_sha256 must be 64 hex digits"),
            ({"value": ""}, "value must be a key of 1-256 bytes"),
            ({"value": "x" * 257}, "value must be a key of 1-256 bytes"),
            ({"value": "v", "enabled": "yes"}, "enabled must be True or False"),
        ]:
            with self.subTest(arguments=arguments), self.assertRaises(UsagePlanError) as raised:
                ag.ApiKey("k", catalog=catalog, **arguments)
            self.assertIn(message, str(raised.exception))
        with self.assertRaisesRegex(UsagePlanError, "key_type must be \"API_KEY\""):
            ag.UsagePlanKey("b", key_id="k", key_type="COGNITO", usage_plan_id="p", catalog=catalog)

        def plan_and_key(c):
            ag.UsagePlan("p", catalog=c, throttle_settings={"rate_limit": 1, "burst_limit": 1})
            ag.UsagePlan("q", catalog=c, throttle_settings={"rate_limit": 1, "burst_limit": 1})
            ag.ApiKey("k", value="v", catalog=c)

        def unknown_plan(c):
            plan_and_key(c)
            ag.UsagePlanKey("b", key_id="k", key_type="API_KEY", usage_plan_id="nope", catalog=c)

        def unknown_key(c):
            plan_and_key(c)
            ag.UsagePlanKey("b", key_id="nope", key_type="API_KEY", usage_plan_id="p", catalog=c)

        def two_plans(c):
            plan_and_key(c)
            ag.UsagePlanKey("b1", key_id="k", key_type="API_KEY", usage_plan_id="p", catalog=c)
            ag.UsagePlanKey("b2", key_id="k", key_type="API_KEY", usage_plan_id="q", catalog=c)

        def twice(c):
            plan_and_key(c)
            ag.ApiKey("k", value="w", catalog=c)

        def same_plan_name(c):
            ag.UsagePlan("p1", name="same", catalog=c)
            ag.UsagePlan("p2", name="same", catalog=c)

        self.refused("usage_plan_id 'nope' names no UsagePlan of this catalog", unknown_plan)
        self.refused("key_id 'nope' names no ApiKey of this catalog", unknown_key)
        self.refused("UsagePlanKey 'b2': ApiKey 'k' is already in usage plan 'p'; a Sluice key belongs to one plan", two_plans)
        self.refused("ApiKey 'k': declared twice", twice)
        self.refused("two UsagePlans are named 'same'", same_plan_name)
        self.refused("no UsagePlan declared: Sluice refuses a config with no plans", lambda c: None)

    def test_declared_after_sluice_read_the_catalog(self):
        def program():
            import sluice_pulumi

            ag.UsagePlan("p", throttle_settings={"rate_limit": 1, "burst_limit": 1})
            sluice_pulumi.Sluice("sluice", image="r/sluice:1", key_secret="0123456789abcdef")
            ag.UsagePlan("late", throttle_settings={"rate_limit": 1, "burst_limit": 1})

        with self.assertRaisesRegex(UsagePlanError, r"UsagePlan 'late': declared after Sluice 'sluice' read the catalog"):
            harness.run(program)

    def test_sluice_arguments(self):
        import sluice_pulumi

        for arguments, message in [
            ({"key_secret": "short"}, "key_secret (SLUICE_KEY_SECRET) is required, at least 16 characters"),
            ({"replicas": 0}, "replicas must be a whole number, at least 1"),
            ({"redis_storage": "hostPath"}, "redis_storage must be persistentVolume or emptyDir"),
            ({"redis_image": "redis:latest"}, "redis_image 'redis:latest': 'latest' moves"),
            ({"redis_url": "http://redis"}, "redis_url must be a redis:// URL"),
        ]:
            settings = {"image": "r/sluice:1", "key_secret": "0123456789abcdef", **arguments}

            def program():
                ag.UsagePlan("p", throttle_settings={"rate_limit": 1, "burst_limit": 1})
                sluice_pulumi.Sluice("sluice", **settings)

            with self.subTest(arguments=arguments), self.assertRaises(UsagePlanError) as raised:
                harness.run(program)
            self.assertIn(message, str(raised.exception))


class RenderTests(unittest.TestCase):
    def test_route_keys_survive_yaml(self):
        config = {"plans": {"p": {"stages": {"a/s": {"routes": {"* /x": {"rate": 1, "burst": 1}, "GET /{id}": {"rate": 1, "burst": 1}}}}}},
                  "api_keys": []}
        text = render_config(config, "redis://r:6379/0")
        self.assertEqual(yaml.safe_load(text)["plans"], config["plans"])


if __name__ == "__main__":
    unittest.main()
