"""Regenerate the README gallery: every sample content image in every sample style.

    python scripts/make_gallery.py [--size 384] [--out docs/gallery]
"""
import argparse
import glob
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=384)
    p.add_argument("--out", default="docs/gallery")
    p.add_argument("--weights", default="auto")
    args = p.parse_args(argv)

    from PIL import Image

    from nst_keras.config import GatysConfig
    from nst_keras.gatys import stylize
    from nst_keras.image import fit_long_side, load_image, to_uint8
    from nst_keras.models import build_extractor

    config = GatysConfig(size=args.size, weights=args.weights)
    extractor = build_extractor(config.model, config.weights, list(config.content_layers) + list(config.style_layers),
                                notify=print)
    if extractor.model_name != config.model:
        config = config.replace(model=extractor.model_name, weights=extractor.weights_source)
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "samples")
    contents = sorted(glob.glob(os.path.join(root, "content_*.jpg")))
    styles = sorted(glob.glob(os.path.join(root, "style_*.jpg")))
    os.makedirs(args.out, exist_ok=True)
    cell = 200
    sheet = Image.new("RGB", ((len(styles) + 1) * cell, (len(contents) + 1) * cell), "white")
    for j, s in enumerate(styles):
        thumb = Image.fromarray(to_uint8(fit_long_side(load_image(s), cell - 8)))
        sheet.paste(thumb, ((j + 1) * cell + 4, 4))
    for i, c in enumerate(contents):
        content = load_image(c)
        thumb = Image.fromarray(to_uint8(fit_long_side(content, cell - 8)))
        sheet.paste(thumb, (4, (i + 1) * cell + 4))
        for j, s in enumerate(styles):
            name = f"{os.path.basename(c)[8:-4]}_{os.path.basename(s)[6:-4]}"
            result = stylize(content, load_image(s), config, extractor=extractor)
            Image.fromarray(to_uint8(result.image)).save(os.path.join(args.out, name + ".jpg"), quality=88)
            thumb = Image.fromarray(to_uint8(fit_long_side(result.image, cell - 8)))
            sheet.paste(thumb, ((j + 1) * cell + 4, (i + 1) * cell + 4))
            print(name, f"{result.metadata['seconds']:.0f} s", flush=True)
    sheet.save(os.path.join(args.out, "grid.jpg"), quality=88)
    return 0


if __name__ == "__main__":
    sys.exit(main())
