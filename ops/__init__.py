"""Commands an operator runs against a deployed stack (``make smoke``)."""
