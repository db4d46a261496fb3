"""snnc: a compiler for training spiking neural networks."""

__version__ = "0.1.0"
