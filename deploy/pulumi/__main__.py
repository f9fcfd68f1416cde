"""Sluice and Redis on Kubernetes, with the usage plans and API keys below.

The plan is the one an AWS API Gateway program declares as
``aws.apigateway.UsagePlan("mlUsagePlan", ...)``, moved over: ``aws.apigateway`` became
``sluice.apigateway``, and ``api.id`` / ``stage.stage_name`` became the names the gateway sends
as the stage (``X-Sluice-Stage: mlApi/prod``, or ``"stage"`` in /v1/check).

    pulumi config set image registry.example.com/sluice:0.1.0      # your build of deploy/docker/Dockerfile
    pulumi config set --secret keySecret "$(openssl rand -hex 32)"  # SLUICE_KEY_SECRET
    pulumi config set --secret mlKey "$(openssl rand -hex 20)"      # the API key below
    pulumi up
"""

import pulumi

import sluice_pulumi as sluice

config = pulumi.Config()

usage_plan = sluice.apigateway.UsagePlan("mlUsagePlan",
    api_stages=[sluice.apigateway.UsagePlanApiStageArgs(api_id="mlApi", stage="prod",
        throttles=[sluice.apigateway.UsagePlanApiStageThrottleArgs(path="/predict/POST", burst_limit=5, rate_limit=10)])],
    throttle_settings={"rate_limit": 2, "burst_limit": 1},
    quota_settings={"limit": 1000, "period": "WEEK", "offset": 2})

ml_key = sluice.apigateway.ApiKey("mlKey", value=config.require_secret("mlKey"))
sluice.apigateway.UsagePlanKey("mlUsagePlanKey", key_id=ml_key.id, key_type="API_KEY", usage_plan_id=usage_plan.id)

deployment = sluice.Sluice("sluice",
    image=config.require("image"),
    key_secret=config.require_secret("keySecret"),
    admin_tokens=config.get_secret("adminTokens"),
    replicas=config.get_int("replicas") or 3,
    namespace=config.get("namespace") or None,
    redis_url=config.get("redisUrl") or None,
    redis_image=config.get("redisImage") or "redis:7.2.5",
    redis_storage=config.get("redisStorage") or "persistentVolume",
    redis_storage_size=config.get("redisStorageSize") or "1Gi")

pulumi.export("service", deployment.service.metadata.name)
pulumi.export("configMap", deployment.config_map.metadata.name)
pulumi.export("config", deployment.config_text)
