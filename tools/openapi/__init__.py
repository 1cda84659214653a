"""OpenAPI 2.0/3.0/3.1 documents as MCP tools."""

from tools.openapi.plan import BodyField, BodyPlan, OperationPlan, ParamLocation, ParamPlan

__all__ = ["BodyField", "BodyPlan", "OperationPlan", "ParamLocation", "ParamPlan"]
