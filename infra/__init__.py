"""The Pulumi program that deploys the gateway; `__main__.py` is its entry point."""
