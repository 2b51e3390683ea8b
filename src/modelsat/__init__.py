"""modelsat: route each instruction to the model of a zoo most likely to answer it well."""

__version__ = "0.1.0"
