"""The egress broker: the only way a module's HTTP request leaves the server."""

from modules.broker.broker import Broker, BrokerLimits, Injection, Injector, NoCredentials
from modules.broker.policy import OriginAllowlist
from modules.broker.types import EgressRefused, EgressRequest, EgressResponse, HttpHandler

__all__ = [
    "Broker",
    "BrokerLimits",
    "EgressRefused",
    "EgressRequest",
    "EgressResponse",
    "HttpHandler",
    "Injection",
    "Injector",
    "NoCredentials",
    "OriginAllowlist",
]
