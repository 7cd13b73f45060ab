"""The ``keel`` command: a thin shell over keel.api, one module per command group."""
