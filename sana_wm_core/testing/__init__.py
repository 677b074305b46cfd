"""Tiny random checkpoints in the official release layouts, for the tests and `make demo WEIGHTS=tiny`.

`tiny.build_all(models_dir)` writes every repo (original, diffusers, gemma-2-2b-it, refiner, Pi3X); the other
modules build the parts (`tiny_build`), fix the sizes and seeds (`tiny_config`), write the release files
(`tiny_release`), the tokenizer (`tiny_tokenizer`), the refiner (`tiny_refiner`) and Pi3X (`tiny_pi3x`).
Nothing here is imported by the engine itself.
"""
