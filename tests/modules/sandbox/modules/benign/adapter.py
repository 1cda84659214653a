"""A well-behaved module."""

from toolkiln_module import tool


@tool(
    description="Add two integers",
    input_schema={
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
        "additionalProperties": False,
    },
)
def add(a: int, b: int) -> dict:
    return {"sum": a + b}
