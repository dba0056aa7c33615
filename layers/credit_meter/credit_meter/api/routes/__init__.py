"""The metering API's routes, one module per capability, on one router (:mod:`.base`)."""
