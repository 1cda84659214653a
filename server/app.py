"""The MCP server: the SDK's low-level `Server` with every tools/* request routed into the pipeline."""

from __future__ import annotations

from typing import Any

import mcp_types as types
import structlog
from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.server.subscriptions import ListenHandler

from server.pipeline.capabilities import REQUIRED_CLIENT_CAPABILITIES
from server.runtime import Runtime
from server.startup import end_startup
from server.version import __version__
from server.wire import call_result_wire, to_mcp_annotations, to_protocol_error, to_wire
from tools.errors import ToolkilnError
from tools.model import CallContext, Principal, Tool

__all__ = ["REQUIRED_CLIENT_CAPABILITIES", "ToolkilnServer", "build_server"]

log = structlog.get_logger("toolkiln.server")


class ToolkilnServer(Server[Any]):
    """Advertises `listChanged` on every transport (the SDK leaves it off by default)."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options
            or NotificationOptions(tools_changed=True, prompts_changed=True, resources_changed=True),
            experimental_capabilities,
            extensions,
        )


class _ToolView:
    """Caches the wire form of each `Tool` as a plain dict; rebuilt only when the tool object changes.

    A dict, not an `mcp_types.Tool`: the SDK validates and dumps a handler's result anyway, and a
    model would first be dumped to a dict once more — for a 1,000-tool spec that second walk over
    every schema is a large share of the first tools/list. The schemas are the tool's own objects;
    the SDK copies them while serializing and never writes to them.
    """

    def __init__(self) -> None:
        self._cache: dict[str, tuple[Tool, dict[str, Any]]] = {}

    def __call__(self, tool: Tool) -> dict[str, Any]:
        cached = self._cache.get(tool.name)
        if cached is not None and cached[0] is tool:
            return cached[1]
        wire: dict[str, Any] = {"name": tool.name}
        if tool.title is not None:
            wire["title"] = tool.title
        if tool.description is not None:
            wire["description"] = tool.description
        wire["inputSchema"] = tool.input_schema
        if tool.output_schema is not None:
            wire["outputSchema"] = tool.output_schema
        annotations = to_mcp_annotations(tool.annotations)
        if annotations is not None:
            wire["annotations"] = annotations.model_dump(by_alias=True, mode="json", exclude_none=True)
        self._cache[tool.name] = (tool, wire)
        return wire


class _AuthScope:
    """What `PrincipalResolver.of_request` reads from a request: its ASGI scope's verified user."""

    def __init__(self, user: AuthenticatedUser) -> None:
        self.scope = {"user": user}


async def _end_startup_after_first_list(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """`serve` keeps the collector paused until its first tools/list is shaped for the wire."""
    try:
        return await call_next(ctx)
    finally:
        if ctx.method == "tools/list":
            end_startup(freeze=True)


def build_server(runtime: Runtime) -> ToolkilnServer:
    """A server whose tools/list and tools/call both go through `runtime.pipeline`."""
    pipeline = runtime.pipeline
    view = _ToolView()

    def principal_of(ctx: ServerRequestContext[Any, Any]) -> Principal:
        # stdio has no HTTP request; on HTTP/SSE the auth middleware put the verified identity
        # on the request (server.identity.principal explains the rules).
        return runtime.identity.of_request(ctx.request)

    async def list_tools(ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams) -> dict[str, Any]:
        try:
            visible = pipeline.list_tools(principal_of(ctx))
        except Exception as error:
            log.exception("tools_list_failed")
            raise to_protocol_error(error) from None
        # The ListToolsResult wire shape; the SDK validates it against the negotiated version.
        return {**envelope, "tools": [view(tool) for tool in visible]}

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> dict[str, Any] | types.CallToolResult | types.InputRequiredResult:
        context = CallContext(principal=principal_of(ctx), request_id=ctx.request_id, request=ctx)
        try:
            outcome = await pipeline.run(params.name, params.arguments, context)
        except ToolkilnError as error:
            return to_wire(error)
        except Exception as error:
            # A bug in a step: the SDK's handshake-era path would send its text as the error message.
            log.exception("tool_call_failed", tool=params.name[:64])
            return to_wire(error)
        return call_result_wire(outcome)

    def input_schema_of(name: str) -> dict[str, Any] | None:
        # The SDK asks this (2026-07-28 HTTP, Mcp-Param headers) before dispatch and without the
        # request: the caller is the one the auth middleware put in its context variable. A tool
        # the caller may not see has no schema here, exactly like a tool that does not exist.
        tool = runtime.registry.get(name)
        if tool is None:
            return None
        user = auth_context_var.get()
        if user is not None:
            principal = runtime.identity.of_request(_AuthScope(user))
        elif runtime.settings.auth.enabled:
            return None  # no verified caller: it sees no tool at all
        else:
            principal = runtime.local_principal("http")
        return tool.input_schema if pipeline.is_visible(tool, principal) else None

    server = ToolkilnServer(
        runtime.settings.server.name,
        version=__version__,
        instructions=runtime.settings.server.instructions,
        get_tool_input_schema=input_schema_of,
        on_subscriptions_listen=ListenHandler(runtime.notifier.bus),
    )
    # Registered like any handler (the tools capability follows from it): the constructor's
    # `on_list_tools` is typed to return a model, and ours returns the cheaper dict. Its other
    # fields are the model's defaults (the 2026-07-28 surface requires them), minus those a
    # configured cache hint is meant to fill.
    envelope = types.ListToolsResult(tools=[]).model_dump(by_alias=True, mode="json", exclude_none=True)
    del envelope["tools"]
    if "tools/list" in server.cache_hints:
        envelope.pop("ttlMs", None)
        envelope.pop("cacheScope", None)
    server.add_request_handler("tools/list", types.PaginatedRequestParams, list_tools)
    # Likewise a dict for tools/call results (`call_result_wire`): a large structured result is
    # walked once less.
    server.add_request_handler("tools/call", types.CallToolRequestParams, call_tool)
    # We export no traces; the SDK's default OpenTelemetry span per message is pure overhead here.
    server.middleware = [runtime.notifier.track, _end_startup_after_first_list]
    for method, params_type, handler in runtime.extra_handlers:
        server.add_request_handler(method, params_type, handler)
    return server
