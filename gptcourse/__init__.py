"""gptcourse: the finished code of *Build a GPT*, one module per chapter's idea."""

from .config import PRESETS, GPTConfig
from .data import GPTDataset, create_dataloader, load_corpus
from .device import autocast_dtype, get_device
from .model import GELU, GPT, FeedForward, LayerNorm, TransformerBlock
from .tokenizer import get_tokenizer, install_offline_gpt2

# Make plain `tiktoken.get_encoding("gpt2")` work offline once gptcourse is imported.
install_offline_gpt2()

__version__ = "0.1.0"

__all__ = [
    "GPT",
    "GELU",
    "PRESETS",
    "FeedForward",
    "GPTConfig",
    "GPTDataset",
    "LayerNorm",
    "TransformerBlock",
    "autocast_dtype",
    "create_dataloader",
    "get_device",
    "get_tokenizer",
    "load_corpus",
]
