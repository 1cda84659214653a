"""The call pipeline and its steps."""

from server.pipeline.build import build_pipeline
from server.pipeline.capabilities import REQUIRED_CLIENT_CAPABILITIES, RequireClientCapabilities
from server.pipeline.chain import CallNext, Pipeline, Step, ToolCall
from server.pipeline.deadline import Deadline
from server.pipeline.observe import LogCalls
from server.pipeline.resolve import ResolveTool
from server.pipeline.validate import ValidateArguments

__all__ = [
    "REQUIRED_CLIENT_CAPABILITIES",
    "CallNext",
    "Deadline",
    "LogCalls",
    "Pipeline",
    "RequireClientCapabilities",
    "ResolveTool",
    "Step",
    "ToolCall",
    "ValidateArguments",
    "build_pipeline",
]
