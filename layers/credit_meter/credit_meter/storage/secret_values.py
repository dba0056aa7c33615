"""Secrets (the Stripe API key, the webhook signing secret): from the environment when run
locally, else from AWS Secrets Manager, fetched on first use and cached for five minutes (so a
rotated secret is picked up without a redeploy). Never logged, never part of a response."""

from __future__ import annotations

import os


class SecretMissing(RuntimeError):
    pass


def secret(name: str) -> str:
    """``name`` from the environment, else the Secrets Manager secret ``<name>_ARN`` names."""
    value = os.environ.get(name)
    if value:
        return value
    arn = os.environ.get(f"{name}_ARN")
    if not arn:
        raise SecretMissing(f"neither {name} nor {name}_ARN is set")
    from aws_lambda_powertools.utilities import parameters

    fetched = parameters.get_secret(arn, max_age=300)
    if not isinstance(fetched, str) or not fetched:
        raise SecretMissing(f"the secret {name}_ARN names is empty")
    return fetched
