"""The service around the call core: HTTP, store, metrics, warnings delivery, command line."""
