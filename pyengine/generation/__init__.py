"""Text generation: sampling, the decode loop, streaming, chat templates; perplexity."""

from pyengine.generation.perplexity import PerplexityResult, perplexity

__all__ = ["PerplexityResult", "perplexity"]
