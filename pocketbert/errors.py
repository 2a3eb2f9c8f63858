"""User-facing errors: one line that says what went wrong and what to do."""


class PocketbertError(Exception):
    """An error caused by the user's input or environment, printed as one line without a traceback."""


class MissingDependencyError(PocketbertError):
    """An optional dependency (an extra such as ``[onnx]``) is not installed."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(f"{package} is not installed: pip install 'pocketbert[{extra}]'")
        self.package = package
        self.extra = extra
