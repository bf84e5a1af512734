"""Generation in the graph: the local ``llm`` brick (Hugging Face causal LMs, continuous batching,
streaming). ``import brickwork.llm`` imports no torch; the brick does when it loads."""

from ._batcher import Batcher, Sampling
from ._brick import LlmBrick, transformers
from ._remote import OpenAIBrick

__all__ = ["Batcher", "LlmBrick", "OpenAIBrick", "Sampling", "transformers"]
