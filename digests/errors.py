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
    """A named item, channel or delivery does not exist."""
