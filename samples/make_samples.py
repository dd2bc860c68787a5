"""Regenerate every image in samples/.

Content photos come from scikit-image's bundled data; style images are
painted procedurally with numpy + Pillow. Every random choice uses a fixed
seed, so running this script again reproduces the same files.

Usage:  python samples/make_samples.py
Needs:  numpy, pillow, scipy, scikit-image
"""

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from scipy.spatial import cKDTree
from skimage import data

OUT = Path(__file__).resolve().parent
LONG_SIDE = 512
JPEG_QUALITY = 90


# ---------------------------------------------------------------- helpers
def save_jpeg(arr, name):
    img = arr if isinstance(arr, Image.Image) else Image.fromarray(to_u8(arr))
    img.convert("RGB").save(OUT / name, quality=JPEG_QUALITY, optimize=True)


def to_u8(a):
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def noise(rng, h, w, cell):
    """Smooth value noise in [-1, 1] with features roughly `cell` px wide."""
    gh, gw = max(2, h // cell + 2), max(2, w // cell + 2)
    grid = rng.uniform(-1, 1, (gh, gw)).astype(np.float32)
    img = Image.fromarray(grid).resize((gw * cell, gh * cell), Image.BICUBIC)
    return np.asarray(img)[:h, :w]


def streaks(rng, h, w, width=3):
    """Horizontal streak noise in [-1, 1]: fast variation down, slow across."""
    grid = rng.uniform(-1, 1, (h // width, 8)).astype(np.float32)
    return np.asarray(Image.fromarray(grid).resize((w, h), Image.BICUBIC))


def fbm(rng, h, w, cells=(64, 32, 16, 8, 4, 2)):
    """Multi-octave noise in roughly [-1, 1]; coarse octaves weigh more."""
    out = sum(noise(rng, h, w, c) * (c / cells[0]) ** 0.5 for c in cells)
    return out / np.abs(out).max()


def canvas_texture(rng, h, w, strength=1.0):
    """Multiplicative canvas weave plus paint mottling, around 1.0."""
    yy, xx = np.mgrid[0:h, 0:w]
    weave = np.sin(xx * 2.2) * np.sin(yy * 2.2)
    return 1 + strength * (0.035 * weave + 0.06 * fbm(rng, h, w))[..., None]


def mix(c1, c2, t):
    return tuple(int(a + (b - a) * t) for a, b in zip(c1, c2))


def jitter(rng, color, amount):
    return tuple(int(np.clip(c + rng.normal(0, amount), 0, 255)) for c in color)


# ---------------------------------------------------------- content photos
def make_content():
    for name in ("astronaut", "chelsea", "coffee"):
        img = Image.fromarray(getattr(data, name)())
        scale = LONG_SIDE / max(img.size)
        size = (round(img.width * scale), round(img.height * scale))
        save_jpeg(img.resize(size, Image.LANCZOS), f"content_{name}.jpg")


# ------------------------------------------------ style 1: stained glass
def stained_glass(w=512, h=512, seed=1):
    rng = np.random.default_rng(seed)
    # Seeds are denser where a low-frequency noise is high -> cells of many sizes.
    density = noise(rng, h, w, 160)
    pts = np.empty((0, 2))
    while len(pts) < 160:
        p = rng.uniform(0, 1, 2) * (w, h)
        keep = rng.uniform() < 0.25 + 0.75 * (density[int(p[1]), int(p[0])] + 1) / 2
        if keep and (len(pts) == 0 or np.hypot(*(pts - p).T).min() > 16):
            pts = np.vstack([pts, p])

    # Wobble the lookup coordinates so the leading looks hand-cut.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    qx = xx + 6 * noise(rng, h, w, 48)
    qy = yy + 6 * noise(rng, h, w, 48)
    dist, idx = cKDTree(pts).query(np.stack([qx.ravel(), qy.ravel()], 1), k=2)
    d1, d2 = dist[:, 0].reshape(h, w), dist[:, 1].reshape(h, w)
    cell = idx[:, 0].reshape(h, w)

    jewels = np.array([
        (150, 15, 35), (190, 30, 40), (20, 60, 170), (10, 40, 120),
        (0, 115, 80), (20, 150, 110), (235, 165, 20), (250, 205, 60),
        (110, 45, 150), (20, 130, 160), (200, 90, 20), (60, 150, 200),
    ], dtype=np.float32)
    cell_col = jewels[rng.integers(0, len(jewels), len(pts))]
    cell_col *= rng.uniform(0.8, 1.15, (len(pts), 1))
    img = cell_col[cell]

    # Glass is brighter in the middle of a pane, darker towards the lead.
    centre = (d2 - d1) / (d2 + d1 + 1e-6)
    img *= (0.55 + 0.65 * np.sqrt(centre))[..., None]
    # Mottled glass + streaks whose direction changes from pane to pane.
    streak = np.where(cell % 2 == 0, streaks(rng, h, w), streaks(rng, w, h).T)
    img *= (1 + 0.18 * fbm(rng, h, w, (32, 16, 8, 4)) + 0.12 * streak)[..., None]
    # Small bubbles/seeds in the glass.
    bubbles = noise(rng, h, w, 3) > 0.82
    img[bubbles] *= 1.25

    # Lead lines: dark, slightly rounded profile, plus a border frame.
    edge = d2 - d1
    border = np.minimum.reduce([xx, yy, w - 1 - xx, h - 1 - yy])
    edge = np.minimum(edge, 2 * border - 4)
    lead = np.clip((6.5 - edge) / 2.0, 0, 1)[..., None]
    lead_col = 20 + 25 * np.clip(1 - np.abs(edge - 2) / 3, 0, 1)[..., None]
    img = img * (1 - lead) + lead_col * lead
    img *= canvas_texture(rng, h, w, 0.5)
    return to_u8(img)


# ------------------------------------------------- style 2: swirling night
def swirling_night(w=512, h=384, seed=2):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    horizon = 0.72 * h + 18 * np.sin(xx / 70) + 10 * np.sin(xx / 23 + 1)

    # Vortex flow field: (x, y, strength, radius); stars are small vortices.
    vortices = [(170, 120, 1.6, 70), (300, 95, -1.3, 55), (80, 60, 1.2, 40),
                (430, 70, 1.5, 45), (250, 200, 0.9, 60)]
    stars = [(430, 70, 34), (80, 60, 22), (210, 40, 14), (350, 180, 16),
             (40, 170, 12), (480, 200, 13)]
    vx = np.ones_like(xx) * 0.6
    vy = 0.25 * np.sin(xx / 45)
    for cx, cy, s, r in vortices:
        dx, dy = xx - cx, yy - cy
        f = s * np.exp(-(dx * dx + dy * dy) / (2 * r * r)) * 3
        vx += -dy / r * f
        vy += dx / r * f
    # Below the horizon the flow follows the rolling hills.
    ground = yy > horizon
    vx[ground] = 1.0
    vy[ground] = 0.35 * np.cos(xx[ground] / 70)
    angle = np.arctan2(vy, vx)

    glow = np.zeros_like(xx)
    for cx, cy, r in stars:
        glow = np.maximum(glow, np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (1.6 * r) ** 2)))

    sky = [(18, 38, 105), (30, 70, 150), (55, 105, 180), (95, 150, 205),
           (150, 190, 220), (20, 55, 130)]
    gold = [(245, 205, 60), (250, 230, 130), (235, 170, 40), (255, 245, 200)]
    hills = [(20, 45, 70), (35, 70, 90), (60, 90, 110), (25, 60, 50), (70, 100, 80)]

    def color_at(x, y):
        xi, yi = int(np.clip(x, 0, w - 1)), int(np.clip(y, 0, h - 1))
        if ground[yi, xi]:
            return jitter(rng, hills[rng.integers(len(hills))], 10)
        if rng.uniform() < glow[yi, xi] ** 0.7:
            return jitter(rng, gold[rng.integers(len(gold))], 10)
        return jitter(rng, sky[rng.integers(len(sky))], 12)

    # Underpainting: a blurred version of the colour field so no gaps stay white.
    base = Image.new("RGB", (w, h))
    bd = ImageDraw.Draw(base)
    for _ in range(4000):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        bd.ellipse([x - 8, y - 8, x + 8, y + 8], fill=color_at(x, y))
    canvas = base.filter(ImageFilter.GaussianBlur(6))
    draw = ImageDraw.Draw(canvas)

    def stroke(x, y, steps, step, width, color):
        pts = [(x, y)]
        for _ in range(steps):
            a = angle[int(np.clip(y, 0, h - 1)), int(np.clip(x, 0, w - 1))]
            x, y = x + step * math.cos(a), y + step * math.sin(a)
            pts.append((x, y))
        draw.line(pts, fill=color, width=width, joint="curve")
        # Thin lighter ridge on the stroke: impasto highlight.
        hl = mix(color, (255, 255, 240), 0.35)
        draw.line([(px - 1, py - 1) for px, py in pts], fill=hl, width=max(1, width // 4))

    # Coarse-to-fine passes of short thick strokes.
    passes = [(1400, 8, 5, 8, 12), (3000, 6, 4, 5, 8), (3500, 5, 3, 2, 5)]
    for count, steps, step, wmin, wmax in passes:
        for _ in range(count):
            x, y = rng.uniform(-10, w + 10), rng.uniform(-10, h + 10)
            stroke(x, y, steps, step, int(rng.integers(wmin, wmax + 1)), color_at(x, y))

    # Star halos: rings of short strokes, then a bright core.
    for cx, cy, r in stars:
        for ring in np.arange(r * 0.3, r * 1.3, 5):
            for a in np.arange(0, 2 * math.pi, 7 / ring):
                a0 = a + rng.uniform(-0.1, 0.1)
                arc = (a0, a0 + 5 / ring, a0 + 10 / ring)
                pts = [(cx + ring * math.cos(t), cy + ring * math.sin(t)) for t in arc]
                draw.line(pts, fill=jitter(rng, gold[rng.integers(len(gold))], 12), width=4)
        draw.ellipse([cx - r * 0.3, cy - r * 0.3, cx + r * 0.3, cy + r * 0.3], fill=(255, 248, 210))

    # A dark flame-shaped cypress on the left, painted with upward strokes.
    greens = [(15, 35, 25), (30, 60, 35), (60, 55, 30), (10, 25, 35), (70, 95, 50)]
    for _ in range(1500):
        y = rng.uniform(30, h + 10)
        half = 4 + 40 * ((y - 30) / (h - 30)) ** 0.9
        u = rng.uniform(-1, 1)
        x = 95 + half * u + 8 * math.sin(y / 30)
        pts = []
        for k in range(6):  # each stroke curls up and towards the trunk's axis
            yk = y - 4 * k
            pts.append((x - u * k * 1.5 + 5 * math.sin(yk / 14 + u * 3), yk))
        col = jitter(rng, greens[rng.integers(len(greens))], 8)
        draw.line(pts, fill=col, width=int(rng.integers(3, 6)), joint="curve")

    img = np.asarray(canvas, dtype=np.float32) * canvas_texture(rng, h, w)
    return to_u8(img)


# --------------------------------------------- style 3: curling woodblock waves
def woodblock_waves(w=384, h=512, seed=3):
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (w, h), (236, 224, 196))  # paper
    d = ImageDraw.Draw(img)

    # Sky: a vermilion sun and horizontal cloud bands.
    d.ellipse([225, 40, 335, 150], fill=(205, 75, 50))
    for y in range(30, 190, 26):
        x0 = rng.uniform(-80, w - 120)
        d.rounded_rectangle([x0, y, x0 + rng.uniform(120, 260), y + rng.uniform(7, 13)],
                            radius=6, fill=(214, 196, 160))

    indigo = [(18, 32, 80), (30, 55, 115), (22, 42, 95), (45, 80, 140), (28, 48, 105)]
    light = (120, 160, 195)
    cream = (240, 232, 208)

    # Back-to-front wave layers; each crest line is a trochoid (sharp peaks).
    layers = 8
    for i in range(layers):
        y0 = 190 + i * (h - 170) / layers
        L = 110 + 25 * i + rng.uniform(-10, 10)
        r = 0.85 * L / (2 * math.pi)
        amp = 0.9 + 0.08 * i
        phase = rng.uniform(0, 2 * math.pi)
        t = np.linspace(-2 * math.pi, (w / L + 2) * 2 * math.pi, 1400)
        X = L * t / (2 * math.pi) - r * np.sin(t) + phase * L / (2 * math.pi) - L
        Y = y0 - amp * r * np.cos(t)
        X = X - 0.45 * (Y - (y0 - amp * r))  # shift troughs back so crests lean forward
        crest = list(zip(X, Y))
        col = indigo[i % len(indigo)]
        d.polygon(crest + [(w + 50, h + 10), (-50, h + 10)], fill=col)
        # Parallel contour lines give the banded, layered look.
        for k in range(1, 7):
            off = 7 * k
            lc = mix(light, col, k / 7)
            d.line([(x, y + off) for x, y in crest], fill=lc, width=2)
        d.line(crest, fill=cream, width=3)

        # At every crest: a curling spiral and a spray of foam dots.
        for n in range(-1, int(w / L) + 3):
            cxr = L * n + phase * L / (2 * math.pi) - L
            cyr = y0 - amp * r
            s = 0.2 * L * rng.uniform(0.8, 1.2)
            ccx, ccy = cxr + 0.7 * s, cyr + 0.55 * s
            th0 = math.atan2(cyr - ccy, cxr - ccx)
            turns = rng.uniform(1.3, 2.0) * math.pi
            ths = np.linspace(th0, th0 + turns, 90)
            rad = s * (1 - (ths - th0) / (turns * 1.15))
            spiral = list(zip(ccx + rad * np.cos(ths), ccy + rad * np.sin(ths)))
            for j in range(0, len(spiral) - 1, 3):
                wdt = max(1, int(5 * (1 - j / len(spiral))))
                d.line(spiral[j:j + 4], fill=cream, width=wdt)
            # Claw-like fingers of foam reaching forward from the crest.
            for f in range(4):
                a = -0.9 + 0.45 * f
                fx, fy = cxr + 0.2 * s * f, cyr - 2
                d.line([(fx, fy), (fx + 0.35 * s * math.cos(a), fy + 0.35 * s * math.sin(a))],
                       fill=cream, width=2)
            for _ in range(14):
                ox, oy = rng.normal(0.3 * s, 0.5 * s), -abs(rng.normal(0, 0.5 * s))
                rr = rng.uniform(1, 3)
                d.ellipse([cxr + ox - rr, cyr + oy - rr, cxr + ox + rr, cyr + oy + rr], fill=cream)

    # Woodblock printing texture: wood grain + uneven ink + paper fibre.
    arr = np.asarray(img, dtype=np.float32)
    grain = streaks(rng, h, w, 2)
    tex = 1 + 0.06 * grain + 0.08 * fbm(rng, h, w) + 0.04 * noise(rng, h, w, 2)
    arr = arr * tex[..., None]
    return to_u8(arr)


# ---------------------------------------------------- style 4: cubist shards
def cubist_shards(w=512, h=512, seed=4):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    palette = np.array([
        (196, 145, 60), (160, 95, 40), (95, 60, 35), (125, 115, 70), (150, 140, 120),
        (228, 208, 160), (45, 35, 28), (90, 100, 110), (180, 120, 70), (110, 80, 50),
    ], np.float32)
    # Warm ochre ground with a diagonal gradient.
    img = np.empty((h, w, 3), np.float32)
    img[:] = palette[0]
    img *= (0.85 + 0.25 * (xx + yy) / (w + h))[..., None]

    outlines = []
    # Large, medium and small shards, each a translucent angular polygon.
    for count, rmin, rmax in [(18, 120, 220), (45, 50, 110), (70, 18, 45)]:
        for _ in range(count):
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            nv = int(rng.integers(3, 6))
            angs = np.sort(rng.uniform(0, 2 * math.pi, nv))
            rads = rng.uniform(rmin, rmax, nv)
            poly = [(cx + r * math.cos(a), cy + r * math.sin(a)) for a, r in zip(angs, rads)]
            m = Image.new("L", (w, h), 0)
            ImageDraw.Draw(m).polygon(poly, fill=255)
            mask = np.asarray(m, np.float32)[..., None] / 255

            col = palette[rng.integers(len(palette))]
            # Facet shading: linear light-to-dark gradient in a random direction.
            a = rng.uniform(0, 2 * math.pi)
            g = ((xx - cx) * math.cos(a) + (yy - cy) * math.sin(a)) / rmax
            fill = col * (1 + 0.35 * np.clip(g, -1, 1))[..., None]
            # Hatching on about half of the shards.
            if rng.uniform() < 0.5:
                b = rng.uniform(0, math.pi)
                period = rng.uniform(5, 9)
                hatch = np.sin((xx * math.cos(b) + yy * math.sin(b)) * 2 * math.pi / period) > 0.6
                fill = np.where(hatch[..., None], fill * 0.7, fill)
            alpha = rng.uniform(0.55, 0.9)
            img = img * (1 - alpha * mask) + fill * alpha * mask
            if rmax < 150 and rng.uniform() < 0.4:
                # Outline only one or two edges, as in analytic cubism.
                k = int(rng.integers(nv))
                outlines.append([poly[(k + j) % nv] for j in range(int(rng.integers(2, 4)))])

    # Dark edges and a few arcs (guitar/bottle curves) drawn on top.
    top = Image.fromarray(to_u8(img))
    d = ImageDraw.Draw(top)
    for line in outlines:
        d.line(line, fill=(40, 28, 20), width=int(rng.integers(2, 4)))
    for _ in range(6):
        cx, cy, r = rng.uniform(60, w - 60), rng.uniform(60, h - 60), rng.uniform(25, 90)
        start = rng.uniform(0, 360)
        d.arc([cx - r, cy - r, cx + r, cy + r], start, start + rng.uniform(90, 220),
              fill=(35, 25, 20), width=3)
    # Small semi-transparent brush dabs in the local colour give a painted surface.
    src = np.asarray(top)
    dabs = Image.new("RGBA", (w, h))
    dd = ImageDraw.Draw(dabs)
    for _ in range(6000):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        a = rng.normal(1.2, 0.3)
        ln = rng.uniform(4, 10)
        col = jitter(rng, src[int(y), int(x)], 18) + (90,)
        dd.line([(x, y), (x + ln * math.cos(a), y + ln * math.sin(a))], fill=col, width=3)
    top = Image.alpha_composite(top.convert("RGBA"), dabs).convert("RGB")
    img = np.asarray(top, np.float32) * canvas_texture(rng, h, w, 1.3)
    return to_u8(img)


def main():
    make_content()
    save_jpeg(stained_glass(), "style_stained_glass.jpg")
    save_jpeg(swirling_night(), "style_swirling_night.jpg")
    save_jpeg(woodblock_waves(), "style_woodblock_waves.jpg")
    save_jpeg(cubist_shards(), "style_cubist_shards.jpg")


if __name__ == "__main__":
    main()
