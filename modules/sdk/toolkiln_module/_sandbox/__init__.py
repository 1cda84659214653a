"""The worker side of the sandbox: confinement and the serving loop (not for module code)."""
