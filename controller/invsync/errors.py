"""The one error type for bad user input: its message is a single line naming file, resource and field."""


class InputError(Exception):
    """Bad manifests, snapshots or arguments; the CLI prints the message and exits 2."""

    def __init__(self, message: str) -> None:
        # Names and keys come from the input: one holding a line break must not split the message.
        super().__init__(message.replace("\r", "\\r").replace("\n", "\\n"))
