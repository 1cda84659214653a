"""Sandboxed adapter modules: manifest, registry, validation, approval, hot-load and rollback.

    manifest.py        `manifest.toml` and the `<data_dir>/modules/<name>/<version>/` layout
    registry.py        module versions and their states in `<data_dir>/modules.db`
    lifecycle.py       validate → approve → activate, disable, rollback, unload (CLI and server)
    validate.py        the validation stages and their actionable problems
    approval.py        what an approval pins: file and tool-definition hashes
    approval_elicit.py approval by MCP elicitation (both protocol eras)
    loader.py          the running server follows the registry's active versions
    source.py          installs the management tools and starts the modules with the server
    admin_tools.py     the admin-only management tools
    sandbox/, broker/  the worker processes and their egress broker

Only the light, data-only names are re-exported here, so importing a submodule stays cheap.
"""

from modules.manifest import ManifestInvalid, ModuleManifest, ModuleRef, load_manifest

__all__ = ["ManifestInvalid", "ModuleManifest", "ModuleRef", "load_manifest"]
