"""The one exception type of the library; the server turns it into a 4xx."""


class XaiError(ValueError):
    """Bad input or an unusable file: the message says what and why, for a person."""

    http_status = 400


class NotFoundError(XaiError):
    """A run, step, sample set or sample that does not exist."""

    http_status = 404
