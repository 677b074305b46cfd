"""Draws the example input image shipped with the workflows (a desert road at golden hour, 1280x720).

Procedural so the repository carries no third-party asset: `python scripts/make_example_image.py OUT.png`.
"""
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def draw(width: int = 1280, height: int = 720, seed: int = 7) -> Image.Image:
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, height)[:, None, None]
    sky = (1 - y) * np.array([70, 110, 190]) + y * np.array([250, 190, 120])
    img = Image.fromarray(np.broadcast_to(sky, (height, width, 3)).astype(np.uint8))
    d = ImageDraw.Draw(img)
    horizon = int(height * 0.58)
    d.ellipse([width * 0.68, horizon - 150, width * 0.68 + 110, horizon - 40], fill=(255, 225, 160))
    for layer, (col, amp) in enumerate([((150, 110, 120), 90), ((120, 80, 80), 60)]):
        xs = np.linspace(0, width, 40)
        ys = horizon - amp * (0.5 + 0.5 * np.sin(xs / (140 + 60 * layer) + layer * 2)) - rng.uniform(0, 25, 40)
        d.polygon([(0, horizon)] + list(zip(xs.tolist(), ys.tolist())) + [(width, horizon)], fill=col)
    d.rectangle([0, horizon, width, height], fill=(205, 160, 105))
    cx = width // 2
    d.polygon([(cx - 18, horizon), (cx + 18, horizon), (cx + 420, height), (cx - 420, height)], fill=(70, 65, 70))
    for k in range(8):
        t0, t1 = (k / 8) ** 1.6, ((k + 0.45) / 8) ** 1.6
        ya, yb = horizon + t0 * (height - horizon), horizon + t1 * (height - horizon)
        d.polygon([(cx - 2 - 10 * t0, ya), (cx + 2 + 10 * t0, ya), (cx + 2 + 10 * t1, yb), (cx - 2 - 10 * t1, yb)],
                  fill=(235, 220, 150))
    for _ in range(60):
        x, yy = rng.uniform(0, width), rng.uniform(horizon + 10, height)
        if abs(x - cx) > 40 + (yy - horizon) * 1.1:
            r = 2 + (yy - horizon) / 40
            d.ellipse([x - r, yy - r, x + r, yy + r * 0.6], fill=(120, 110, 70))
    return img.filter(ImageFilter.GaussianBlur(0.8))


if __name__ == "__main__":
    draw().save(sys.argv[1] if len(sys.argv) > 1 else "example_input.png", optimize=True)
