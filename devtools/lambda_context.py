"""A minimal stand-in for the Lambda context object, for local runs and tests."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

FAKE_ACCOUNT_ID = "123456789012"


@dataclass
class FakeLambdaContext:
    """Quacks like ``awslambdaric``'s ``LambdaContext`` closely enough for Powertools."""

    function_name: str = "credit-meter-local"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    timeout_seconds: float = 10.0
    region: str = "us-east-1"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = "local"
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        if not self.log_group_name:
            self.log_group_name = f"/aws/lambda/{self.function_name}"
        self._deadline = time.monotonic() + self.timeout_seconds

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{FAKE_ACCOUNT_ID}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))
