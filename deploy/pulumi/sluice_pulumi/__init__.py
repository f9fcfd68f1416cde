"""Sluice on Kubernetes with Pulumi: usage plans and keys as code (``apigateway``, with the
arguments of Pulumi AWS's ``aws.apigateway``), rendered into Sluice's config and deployed with
Redis (``Sluice``)."""

from . import apigateway
from .apigateway import UsagePlanError
from .kubernetes import Sluice, check_image, render_config

__all__ = ["Sluice", "UsagePlanError", "apigateway", "check_image", "render_config"]
