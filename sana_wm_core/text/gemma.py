"""Stage-1 prompt encoding with gemma-2-2b-it, as the SANA-WM reference does it.

The prompt is appended to the instruction (chi) prefix, tokenised with right padding to
`len(tokens(chi)) + max_length - 2`, run through the Gemma-2 decoder, and from the final hidden states
(after the last RMSNorm) only position 0 (BOS) and the last `max_length - 1` positions are kept, with the
same slice of the attention mask. The negative prompt is encoded without the prefix at `max_length`.
The encoder is big (2.6B) and needed once per prompt, so it can be offloaded or freed right after.
"""
from __future__ import annotations

import contextlib
import gc
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import torch

from ..runtime.dtypes import auto_dtype
from .chi_prompt import CHI_PROMPT_LINES

MAX_LENGTH = 300


@dataclass
class PromptEmbeds:
    """(1,1,T,D) hidden states + (1,T) masks for the prompt and the negative prompt (CPU tensors), and the
    instruction (chi) lines the prompt was prefixed with."""

    embeds: torch.Tensor
    mask: torch.Tensor
    negative_embeds: torch.Tensor
    negative_mask: torch.Tensor
    chi_prompt: tuple[str, ...] = ()


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")




def _load_decoder(folder: Path, dtype: torch.dtype) -> torch.nn.Module:
    """The Gemma-2 decoder (`Gemma2Model`) from a CausalLM or a bare-model checkpoint folder."""
    from transformers import AutoModel, AutoModelForCausalLM

    from ..weights.safetensors_file import check_safetensors_folder

    check_safetensors_folder(folder)  # a truncated file is named, not a bare deserializer error
    cfg = json.loads((folder / "config.json").read_text())
    archs = cfg.get("architectures") or []
    if any(a.endswith("ForCausalLM") for a in archs):
        lm = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype)
        model = lm.get_decoder()
        del lm
    else:
        model = AutoModel.from_pretrained(str(folder), dtype=dtype)
    return model.eval().requires_grad_(False)


class GemmaPromptEncoder:
    """Encodes Stage-1 prompts; `offload()` parks the weights on CPU, `free()` drops them for good."""

    def __init__(self, tokenizer, model: torch.nn.Module, *, chi_prompt: Sequence[str] | None = None,
                 max_length: int = MAX_LENGTH, device: torch.device | str | None = None,
                 offload_device: torch.device | str = "cpu", free_after_encode: bool = False):
        self.tokenizer = tokenizer
        self.model: torch.nn.Module | None = model
        self.chi_lines = tuple(CHI_PROMPT_LINES if chi_prompt is None else chi_prompt)
        self.max_length = int(max_length)
        self.device = torch.device(device) if device is not None else _default_device()
        self.offload_device = torch.device(offload_device)
        self.free_after_encode = bool(free_after_encode)
        self._reload = None  # set by from_folder: brings freed weights back for the next prompt

    @classmethod
    def from_folder(cls, folder: str | Path, *, dtype: torch.dtype | None = None,
                    device: torch.device | str | None = None, **kw) -> "GemmaPromptEncoder":
        """Load tokenizer + decoder from a local Hugging Face folder (e.g. models/text_encoders/gemma-2-2b-it),
        or from a diffusers SANA-WM folder (its text_encoder/ and tokenizer/)."""
        from transformers import AutoTokenizer

        folder = tok_folder = Path(folder)
        if (folder / "text_encoder" / "config.json").is_file():      # a diffusers pipeline folder
            folder, tok_folder = folder / "text_encoder", folder / "tokenizer"
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(
                f"No Gemma-2 text encoder at {folder}: expected config.json, the weights and the tokenizer files "
                "(download Efficient-Large-Model/gemma-2-2b-it into models/text_encoders/gemma-2-2b-it)")
        dev = torch.device(device) if device is not None else _default_device()
        tok = AutoTokenizer.from_pretrained(str(tok_folder))
        load_dtype = dtype or auto_dtype(dev)
        enc = cls(tok, _load_decoder(folder, load_dtype), device=dev, **kw)
        enc._reload = lambda: _load_decoder(folder, load_dtype)
        return enc

    @property
    def chi(self) -> str:
        return "\n".join(self.chi_lines)

    # -- memory -------------------------------------------------------------------------------------
    def offload(self) -> None:
        """Move the weights to the offload device (CPU) so the DiT gets the accelerator."""
        if self.model is not None:
            self.model.to(self.offload_device)
            _empty_cache()

    def free(self) -> None:
        """Drop the weights; an encoder loaded from a folder reloads them for its next prompt."""
        self.model = None
        gc.collect()
        _empty_cache()

    @contextlib.contextmanager
    def on_device(self) -> Iterator["GemmaPromptEncoder"]:
        """Weights on `self.device` inside the block; afterwards offloaded (or freed if `free_after_encode`)."""
        self._ensure_loaded()
        self.model.to(self.device)
        try:
            yield self
        finally:
            self.free() if self.free_after_encode else self.offload()

    def _ensure_loaded(self) -> None:
        if self.model is None:
            if self._reload is None:
                raise RuntimeError("this text encoder was freed; load it again")
            self.model = self._reload()  # ComfyUI caches the loader's output, so a freed encoder comes back here

    # -- encoding -----------------------------------------------------------------------------------
    def _run(self, text: str, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        self.tokenizer.padding_side = "right"
        tok = self.tokenizer([text], max_length=length, padding="max_length", truncation=True,
                             return_tensors="pt")
        ids = tok.input_ids.to(self.device)
        mask = tok.attention_mask.to(self.device)
        out = self.model(input_ids=ids, attention_mask=mask)
        return out.last_hidden_state, mask

    @torch.no_grad()
    def encode(self, prompt: str, negative_prompt: str = "", *,
               chi_prompt: Sequence[str] | None = None) -> PromptEmbeds:
        """Prompt + negative prompt -> `PromptEmbeds` (CPU tensors, encoder dtype). `chi_prompt` is the
        release's instruction lines (its config.yaml `text_encoder.chi_prompt`); None = this encoder's own."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError("prompt is empty: describe the scene to generate")
        if not isinstance(negative_prompt, str):
            raise ValueError("negative_prompt must be a string (use '' for none)")
        self._ensure_loaded()
        prompt = prompt.strip()
        n = self.max_length
        lines = self.chi_lines if chi_prompt is None else tuple(chi_prompt)
        chi = "\n".join(lines)
        if chi:
            hidden, mask = self._run(chi + prompt, len(self.tokenizer.encode(chi)) + n - 2)
            keep = [0] + list(range(hidden.shape[1] - n + 1, hidden.shape[1]))
            hidden, mask = hidden[:, keep], mask[:, keep]
        else:
            hidden, mask = self._run(prompt, n)
        neg, neg_mask = self._run(negative_prompt, n)
        return PromptEmbeds(hidden[:, None].cpu(), mask.cpu(), neg[:, None].cpu(), neg_mask.cpu(), lines)


def _empty_cache() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
