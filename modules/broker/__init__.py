"""The egress broker: the only way a module's HTTP request leaves the server."""

from modules.broker.types import EgressRefused, EgressRequest, EgressResponse, HttpHandler

__all__ = ["EgressRefused", "EgressRequest", "EgressResponse", "HttpHandler"]
