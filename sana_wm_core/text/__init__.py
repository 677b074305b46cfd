"""Stage-1 prompt encoding (gemma-2-2b-it with the SANA instruction prefix)."""
from .chi_prompt import CHI_PROMPT_LINES, chi_from_config
from .gemma import MAX_LENGTH, GemmaPromptEncoder, PromptEmbeds

__all__ = ["CHI_PROMPT_LINES", "chi_from_config", "MAX_LENGTH", "GemmaPromptEncoder", "PromptEmbeds"]
