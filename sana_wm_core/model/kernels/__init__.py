"""One function per hot op, each picking the best implementation for the device it runs on.

- `linear`: weights in fp32/bf16/fp16 or stored fp8 e4m3 (upcast per layer at matmul time).
- `bidirectional_short_conv`: the GDN key short convolution (7-tap symmetric filter over frames).
- `frame_gdn`: the frame-wise bidirectional Gated DeltaNet scan (chunked PyTorch; batched GEMMs).
- `softmax_attention`, `camera_softmax_attention`, `cross_attention`: SDPA with the reference's dtype and
  head-dim quirks.
"""
from .attention import camera_softmax_attention, cross_attention, softmax_attention
from .gdn import frame_gdn
from .linear import FP8_DTYPE, dequantize, linear, quantize_fp8
from .short_conv import bidirectional_short_conv

__all__ = ["linear", "dequantize", "quantize_fp8", "FP8_DTYPE", "bidirectional_short_conv", "frame_gdn",
           "softmax_attention", "camera_softmax_attention", "cross_attention"]
