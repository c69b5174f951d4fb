"""The one error type for bad user input: its message is a single line naming file, resource and field."""


class InputError(Exception):
    """Bad manifests, snapshots or arguments; the CLI prints the message and exits 2."""
