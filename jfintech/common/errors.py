"""The one error type for domain failures. Services raise it; the API maps it to a response."""


class ApplicationError(Exception):
    """A domain rule was broken: the message is for a person, the code for a program.

    ``status`` is the HTTP status the API answers with (400 unless the service says otherwise:
    404 for something out of the caller's reach, 409 for a state conflict, 422 for a well-formed
    request the domain refuses). ``headers`` go on the API's response (a 503's ``Retry-After``).
    """

    def __init__(self, message: str, code: str = "invalid", extra: dict | None = None, status=400,
                 headers: dict | None = None):  # fmt: skip
        super().__init__(message)
        self.message = message
        self.code = code
        self.extra = extra or {}
        self.status = status
        self.headers = headers or {}

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"
