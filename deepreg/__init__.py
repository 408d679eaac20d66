"""DeepREG: learn gene regulation (promoter sequence x regulator expression) with deep networks."""

__version__ = "0.1.0"
