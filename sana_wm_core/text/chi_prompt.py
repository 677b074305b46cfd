"""The instruction ("chi") prefix SANA-WM's Stage-1 prompts were trained with.

This is model data, not code: the `text_encoder.chi_prompt` lines of the release `config.yaml`. The lines
are joined with newlines and the user prompt is appended directly after the final "User Prompt: ".
A `config.yaml` that carries its own `chi_prompt` overrides these lines (see `chi_from_config`).
"""
from __future__ import annotations

from typing import Any

CHI_PROMPT_LINES: tuple[str, ...] = (
    'Given a user prompt, generate an "Enhanced prompt" that provides detailed visual descriptions suitable for image generation. Evaluate the level of detail in the user prompt:',
    '- If the prompt is simple, focus on adding specifics about colors, shapes, sizes, textures, and spatial relationships to create vivid and concrete scenes.',
    '- If the prompt is already detailed, refine and enhance the existing details slightly without overcomplicating.',
    'Here are examples of how to transform or refine prompts:',
    '- User Prompt: A cat sleeping -> Enhanced: A small, fluffy white cat curled up in a round shape, sleeping peacefully on a warm sunny windowsill, surrounded by pots of blooming red flowers.',
    '- User Prompt: A busy city street -> Enhanced: A bustling city street scene at dusk, featuring glowing street lamps, a diverse crowd of people in colorful clothing, and a double-decker bus passing by towering glass skyscrapers.',
    'Please generate only the enhanced description for the prompt below and avoid including any additional commentary or evaluations:',
    'User Prompt: ',
)


def chi_from_config(config: dict[str, Any] | None) -> tuple[str, ...]:
    """The chi lines of a parsed release config (`text_encoder.chi_prompt`), else the released default."""
    lines = ((config or {}).get("text_encoder") or {}).get("chi_prompt")
    if isinstance(lines, (list, tuple)) and lines and all(isinstance(x, str) for x in lines):
        return tuple(lines)
    return CHI_PROMPT_LINES
