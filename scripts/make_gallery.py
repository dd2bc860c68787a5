"""Regenerate the README gallery: the sample content images in every sample style.

    python scripts/make_gallery.py [--size 256] [--contents astronaut chelsea] [--out docs/gallery]
    python scripts/make_gallery.py --grid-only     # rebuild grid.jpg from the images already made
"""
import argparse
import glob
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
SAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "samples")
CELL = 200


def _name(path, prefix):
    return os.path.basename(path)[len(prefix):-4]


def build_grid(out_dir, contents, styles):
    """Inputs along the edges, results inside; pairs not made yet stay blank."""
    from PIL import Image

    from nst_keras.image import fit_long_side, load_image, to_uint8

    def thumb(path):
        return Image.fromarray(to_uint8(fit_long_side(load_image(path), CELL - 8)))

    rows = [c for c in contents if glob.glob(os.path.join(out_dir, _name(c, "content_") + "_*.jpg"))]
    sheet = Image.new("RGB", ((len(styles) + 1) * CELL, (len(rows) + 1) * CELL), "white")
    for j, s in enumerate(styles):
        sheet.paste(thumb(s), ((j + 1) * CELL + 4, 4))
    for i, c in enumerate(rows):
        sheet.paste(thumb(c), (4, (i + 1) * CELL + 4))
        for j, s in enumerate(styles):
            result = os.path.join(out_dir, f"{_name(c, 'content_')}_{_name(s, 'style_')}.jpg")
            if os.path.exists(result):
                sheet.paste(thumb(result), ((j + 1) * CELL + 4, (i + 1) * CELL + 4))
    sheet.save(os.path.join(out_dir, "grid.jpg"), quality=88)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--out", default="docs/gallery")
    p.add_argument("--weights", default="auto")
    p.add_argument("--contents", nargs="*", help="content sample names (default: all)")
    p.add_argument("--grid-only", action="store_true")
    args = p.parse_args(argv)
    contents = sorted(glob.glob(os.path.join(SAMPLES, "content_*.jpg")))
    if args.contents:
        contents = [c for c in contents if _name(c, "content_") in args.contents]
    styles = sorted(glob.glob(os.path.join(SAMPLES, "style_*.jpg")))
    os.makedirs(args.out, exist_ok=True)
    if not args.grid_only:
        from PIL import Image

        from nst_keras.gatys.config import GatysConfig
        from nst_keras.gatys import stylize
        from nst_keras.image import load_image, to_uint8
        from nst_keras.models import build_extractor

        config = GatysConfig(size=args.size, weights=args.weights)
        extractor = build_extractor(config.model, config.weights,
                                    list(config.content_layers) + list(config.style_layers), notify=print)
        for c in contents:
            for s in styles:
                name = f"{_name(c, 'content_')}_{_name(s, 'style_')}"
                result = stylize(load_image(c), load_image(s), config, extractor=extractor)
                Image.fromarray(to_uint8(result.image)).save(os.path.join(args.out, name + ".jpg"), quality=88)
                print(name, f"{result.metadata['seconds']:.0f} s", flush=True)
                build_grid(args.out, contents, styles)
    build_grid(args.out, contents, styles)
    return 0


if __name__ == "__main__":
    sys.exit(main())
