"""One exception root for the digests package; each class carries a message a user can act on."""


class DigestError(Exception):
    """Base class of every error the digests package raises on purpose."""


class ParseError(DigestError):
    """A document could not be read as the format it claims to be."""


class UnknownFormatError(ParseError):
    """No parser recognises the document."""


class ConfigError(DigestError):
    """The configuration is invalid; the message names the key path."""


class TemplateError(ConfigError):
    """A blurb template does not compile; the message names the file and line."""


class NotFoundError(DigestError):
    """A named item, channel, source or post does not exist (or cannot be acted on).

    The message is English for the log and the command line; ``what``, ``name``, ``known`` and
    ``reason`` let a front end say it in its user's language (bot.handlers.common.problem_text).
    """

    def __init__(self, message: str, *, what: str = "", name: object = None, known: tuple[str, ...] = (),
                 reason: str | None = None) -> None:
        super().__init__(message)
        self.what = what  # item | channel | source | post | retired channel
        self.name = name
        self.known = known
        self.reason = reason
