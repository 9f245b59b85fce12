"""matextract: evidence-linked structured extraction from materials-science papers."""

__version__ = "0.1.0"
