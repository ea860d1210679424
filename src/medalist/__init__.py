"""medalist: a prediction competition in, a strong and valid submission out."""

__version__ = "0.1.0"
