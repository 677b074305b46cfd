"""Lets the CUDA-built torchvision wheel import on CPU-only torch.

Its _C.so cannot load there, and torchvision/_meta_registrations.py then fails registering fakes for
torchvision::nms / qnms. Defining those two schemas (no kernels) right before torchvision's first
import is enough; the finder removes itself and costs nothing when torchvision is never imported.
"""
import sys

_keep = []


class _TorchvisionCpuShim:
    def find_spec(self, name, path=None, target=None):
        if name == "torchvision":
            sys.meta_path.remove(self)
            import torch

            lib = torch.library.Library("torchvision", "FRAGMENT")
            for op in ("nms", "qnms"):
                lib.define(op + "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            _keep.append(lib)
        return None


sys.meta_path.insert(0, _TorchvisionCpuShim())
