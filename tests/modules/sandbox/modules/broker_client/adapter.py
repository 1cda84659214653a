"""A module that calls its API through the broker, and tries the requests the broker must refuse."""

from toolkiln_module import http, tool


@tool(description="GET a URL through the broker")
def fetch(url: str, headers: dict | None = None) -> dict:
    try:
        response = http.get(url, headers=headers or {})
    except http.HttpError as refused:
        return {"refused": refused.reason, "message": str(refused)}
    return {"status": response.status_code, "body": response.text}
