"""The one exception type users see: a one-line message naming the problem."""


class FedFairError(ValueError):
    """Bad input or configuration. The CLI prints ``error: <message>`` and exits 2."""
