"""Credit Meter: prepaid credit wallets metered with reserve -> commit / release.

The package is shipped as a Lambda layer; handlers in ``functions/`` stay thin and call
:mod:`credit_meter.metering.service`. Nothing here does work at import time.
"""
