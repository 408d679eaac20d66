"""Stage 2, models: one config picks an architecture; `deepreg.models.build` turns it into Keras models."""

from deepreg.models.config import HeadConfig, ModelConfig, RegulatorConfig, SequenceConfig

__all__ = ["ModelConfig", "SequenceConfig", "RegulatorConfig", "HeadConfig"]
