"""The refiner's own prompt path: raw prompt -> Gemma-3 hidden states -> LTX-2 connectors.

Stage 2 does not reuse the Stage-1 (gemma-2) embeddings: it tokenises the stripped user prompt with
left padding, stacks every Gemma-3 hidden state (embeddings + each layer), normalises each layer over
the real tokens, and lets the LTX-2 text connectors turn that into the cross-attention context.
"""
from __future__ import annotations

import torch

# Scale applied after the per-layer (x - mean) / range normalisation, as in LTX-2.
_TEXT_NORM_SCALE = 8.0
_TEXT_NORM_EPS = 1e-6


def tokenize_prompt(tokenizer, prompt: str, max_length: int, device: torch.device | str = "cpu"):
    """Token ids and mask, left-padded to `max_length` (the refiner was trained with left padding)."""
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be a string, got {type(prompt).__name__}")
    if getattr(tokenizer, "pad_token", None) is None:
        raise ValueError("the refiner tokenizer has no pad token; use the Gemma-3 tokenizer files the release "
                         "ships beside the Gemma-3 weights in refiner/text_encoder/ (load them with "
                         "sana_wm_core.refiner.loading.load_tokenizer, which also sets a pad token)")
    batch = tokenizer(
        [prompt.strip()],
        padding="max_length",
        padding_side="left",
        max_length=int(max_length),
        truncation=True,
        add_special_tokens=True,
        return_tensors="pt",
    )
    return batch.input_ids.to(device), batch.attention_mask.to(device)


def normalise_layer_stack(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-layer masked normalisation of stacked hidden states, flattened to `(B, S, D*L)`.

    `hidden` is `(B, S, D, L)` with left padding; statistics use only the last `mask.sum()` tokens
    (mean over tokens and features, min/max over the same), padded rows become zero.
    """
    b, s, d, _ = hidden.shape
    lengths = mask.sum(dim=-1).view(b, 1)
    positions = torch.arange(s, device=hidden.device).view(1, s)
    valid = (positions >= (s - lengths)).view(b, s, 1, 1)

    total = hidden.masked_fill(~valid, 0.0).sum(dim=(1, 2), keepdim=True)
    mean = total / ((lengths * d).view(b, 1, 1, 1) + _TEXT_NORM_EPS)
    lo = hidden.masked_fill(~valid, float("inf")).amin(dim=(1, 2), keepdim=True)
    hi = hidden.masked_fill(~valid, float("-inf")).amax(dim=(1, 2), keepdim=True)

    out = (hidden - mean) / (hi - lo + _TEXT_NORM_EPS) * _TEXT_NORM_SCALE
    out = out.flatten(2)
    out = out.masked_fill(~valid.view(b, s, 1), 0.0)
    return out.to(hidden.dtype)


def _backbone(text_encoder):
    """The part of a Gemma-3 model that yields hidden states without computing vocabulary logits."""
    inner = getattr(text_encoder, "model", None)
    return inner if isinstance(inner, torch.nn.Module) else text_encoder


@torch.no_grad()
def encode_refiner_prompt(
    prompt: str,
    *,
    tokenizer,
    text_encoder: torch.nn.Module,
    connectors: torch.nn.Module,
    max_length: int,
    device: torch.device | str,
    dtype: torch.dtype,
    connectors_device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns the refiner's cross-attention context `(1, S, D)` and its binary mask `(1, S)`.

    The text encoder runs where its weights are (`device`); the connectors may live elsewhere
    (`connectors_device`, default `device`).
    """
    ids, mask = tokenize_prompt(tokenizer, prompt, max_length, device)
    out = _backbone(text_encoder)(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    stacked = torch.stack(out.hidden_states, dim=-1)
    del out
    packed = normalise_layer_stack(stacked, mask).to(dtype)
    del stacked
    cdev = connectors_device or device
    embeds, _audio, cmask = connectors(packed.to(cdev), mask.to(cdev))
    return embeds.to(dtype), cmask
