"""Procedural street scenes seen from a car, with Cityscapes trainId labels.

A scene is built in metres on a pinhole camera looking down a straight street: a
road with lane marks between two sidewalks, facades (buildings with windows, walls,
fences, vegetation) along both sides, a cross street or skyline at the far end, and
objects (poles with signs or traffic lights, trees, persons, cars, trucks, buses)
drawn far-to-near so nearer things occlude farther ones. Colour then gets per-class
texture, shading, a global exposure / white-balance change, blur and sensor noise.

Colour carries meaning on purpose (blue sky, green vegetation, khaki terrain, purple-
grey road), so a network fed BGR instead of RGB measurably fails.

Everything is drawn with numpy/OpenCV: about 20-30 ms per 512x1024 frame on one core.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Sequence, Tuple

import cv2
import numpy as np

__all__ = ["generate_scene", "TRAIN_IDS", "IGNORE"]

# Cityscapes trainIds used by the generator.
ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, LIGHT, SIGN = 0, 1, 2, 3, 4, 5, 6, 7
VEGETATION, TERRAIN, SKY, PERSON, CAR, TRUCK, BUS = 8, 9, 10, 11, 13, 14, 15
IGNORE = 255
TRAIN_IDS = (ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, LIGHT, SIGN, VEGETATION,
             TERRAIN, SKY, PERSON, CAR, TRUCK, BUS)

Colour = Tuple[int, int, int]

# Texture amplitude per label: (fine grain, blotches). Index 255 = ignore (ego car).
_FINE = np.zeros(256, np.float32)
_BLOTCH = np.zeros(256, np.float32)
for _lab, _f, _b in ((ROAD, 0.07, 0.10), (SIDEWALK, 0.05, 0.06), (BUILDING, 0.04, 0.07),
                     (WALL, 0.06, 0.10), (FENCE, 0.05, 0.05), (POLE, 0.02, 0.03),
                     (LIGHT, 0.02, 0.02), (SIGN, 0.02, 0.02), (VEGETATION, 0.22, 0.22),
                     (TERRAIN, 0.14, 0.16), (SKY, 0.005, 0.03), (PERSON, 0.04, 0.04),
                     (CAR, 0.02, 0.03), (TRUCK, 0.03, 0.04), (BUS, 0.02, 0.03),
                     (IGNORE, 0.02, 0.02)):
    _FINE[_lab], _BLOTCH[_lab] = _f, _b


@dataclass
class _Camera:
    """Pinhole camera at height ``h`` above a flat ground plane, looking along +Z."""

    f: float      # focal length in pixels
    cx: float     # x of the vanishing point
    cy: float     # y of the horizon
    h: float      # camera height in metres

    def project(self, x: float, y: float, z: float) -> Tuple[float, float]:
        """Ground-aligned point (x right, y up from the ground, z forward) -> pixel."""
        return self.cx + self.f * x / z, self.cy + self.f * (self.h - y) / z

    def quad(self, x0: float, x1: float, y0: float, y1: float, z: float) -> np.ndarray:
        """A vertical rectangle facing the camera at depth z."""
        pts = [self.project(x0, y0, z), self.project(x1, y0, z),
               self.project(x1, y1, z), self.project(x0, y1, z)]
        return np.round(np.array(pts)).astype(np.int32)

    def side(self, x: float, z0: float, z1: float, y0: float, y1: float) -> np.ndarray:
        """A vertical rectangle in the plane x = const, from depth z0 to z1."""
        pts = [self.project(x, y0, z0), self.project(x, y0, z1),
               self.project(x, y1, z1), self.project(x, y1, z0)]
        return np.round(np.array(pts)).astype(np.int32)

    def ground(self, x0: float, x1: float, z0: float, z1: float) -> np.ndarray:
        """A rectangle on the ground, x0..x1 across, z0..z1 along."""
        pts = [self.project(x0, 0.0, z0), self.project(x1, 0.0, z0),
               self.project(x1, 0.0, z1), self.project(x0, 0.0, z1)]
        return np.round(np.array(pts)).astype(np.int32)


class _Canvas:
    """The RGB image and the label map, drawn together."""

    def __init__(self, h: int, w: int) -> None:
        self.rgb = np.zeros((h, w, 3), np.uint8)
        self.labels = np.full((h, w), SKY, np.uint8)
        self.h, self.w = h, w

    def poly(self, pts: np.ndarray, colour: Colour, label: int) -> None:
        cv2.fillPoly(self.rgb, [pts], tuple(int(c) for c in colour))
        if label >= 0:
            cv2.fillPoly(self.labels, [pts], int(label))

    def circle(self, centre: Tuple[float, float], radius: float, colour: Colour,
               label: int) -> None:
        c = (int(round(centre[0])), int(round(centre[1])))
        r = max(1, int(round(radius)))
        cv2.circle(self.rgb, c, r, tuple(int(v) for v in colour), -1)
        if label >= 0:
            cv2.circle(self.labels, c, r, int(label), -1)

    def line(self, p0, p1, colour: Colour, thickness: float, label: int) -> None:
        a = (int(round(p0[0])), int(round(p0[1])))
        b = (int(round(p1[0])), int(round(p1[1])))
        t = max(1, int(round(thickness)))
        cv2.line(self.rgb, a, b, tuple(int(v) for v in colour), t)
        if label >= 0:
            cv2.line(self.labels, a, b, int(label), t)


def _jitter(rng: np.random.Generator, colour: Sequence[float], amount: float) -> Colour:
    c = np.asarray(colour, np.float64) + rng.uniform(-amount, amount, 3)
    return tuple(int(v) for v in np.clip(c, 0, 255))  # type: ignore[return-value]


def _shade(colour: Sequence[float], k: float) -> Colour:
    return tuple(int(np.clip(v * k, 0, 255)) for v in colour)  # type: ignore[return-value]


# ----------------------------------------------------------------------------- palettes

_BUILDING_COLOURS = [(170, 160, 140), (150, 140, 130), (120, 115, 110), (175, 130, 100),
                     (140, 90, 70), (190, 180, 160), (100, 100, 105), (160, 150, 170),
                     (200, 190, 170), (130, 120, 95)]
_CAR_COLOURS = [(200, 20, 20), (20, 40, 160), (230, 230, 230), (20, 20, 20), (120, 120, 125),
                (180, 180, 190), (20, 110, 40), (240, 200, 20), (110, 30, 30), (60, 80, 120),
                (250, 120, 10), (90, 60, 140), (160, 190, 220), (40, 40, 50)]
_CLOTHES = [(30, 30, 40), (200, 30, 30), (30, 60, 150), (230, 230, 230), (90, 90, 90),
            (40, 120, 60), (220, 180, 40), (120, 60, 20), (150, 50, 130), (20, 20, 20)]
_SKIN = [(240, 200, 170), (200, 150, 110), (140, 95, 60), (90, 60, 40), (225, 180, 150)]


# ----------------------------------------------------------------------------- the scene

def _sky(cv: _Canvas, rng: np.random.Generator, horizon: float) -> None:
    h, w = cv.h, cv.w
    sh, sw = max(2, h // 8), max(2, w // 8)  # the sky is smooth: draw it small, then enlarge
    top = np.array(_jitter(rng, (60, 115, 200), 20), np.float32)
    overcast = rng.random() < 0.25
    low = np.array(_jitter(rng, (185, 205, 230) if overcast else (150, 190, 235), 15), np.float32)
    if overcast:
        top = 0.5 * top + 0.5 * np.array((150, 165, 200), np.float32)
    t = np.clip(np.arange(sh, dtype=np.float32) / max(horizon * sh / h, 1.0), 0, 1)[:, None]
    sky = np.repeat((top[None, :] * (1 - t) + low[None, :] * t)[:, None, :], sw, axis=1)
    if rng.random() < 0.6:  # clouds: thresholded smooth noise, whitened
        field = cv2.resize(rng.random((6, 12)).astype(np.float32), (sw, sh),
                           interpolation=cv2.INTER_CUBIC)
        cover = np.clip((field - rng.uniform(0.55, 0.75)) * 3.0, 0, 1)
        amount = (cover * (1 - t) ** 0.5)[..., None]
        sky = sky * (1 - amount) + np.array((235, 238, 242), np.float32) * amount
    cv.rgb[:] = cv2.resize(np.clip(sky, 0, 255).astype(np.uint8), (w, h),
                           interpolation=cv2.INTER_LINEAR)


def _bumpy_top(cam: _Camera, rng: np.random.Generator, x: float, z0: float, z1: float,
               y0: float, y1: float, n: int = 12) -> np.ndarray:
    """Side polygon with an irregular top edge (hedges, tree masses)."""
    zs = np.linspace(z0, z1, n)
    tops = y1 + rng.uniform(-0.25, 0.25, n) * (y1 - y0)
    pts = [cam.project(x, y0, z0)] + [cam.project(x, float(t), float(z)) for z, t in zip(zs, tops)]
    pts.append(cam.project(x, y0, z1))
    return np.round(np.array(pts)).astype(np.int32)


def _facade_building(cv: _Canvas, cam: _Camera, rng: np.random.Generator, x: float,
                     z0: float, z1: float, light: float) -> None:
    height = rng.uniform(6, 28)
    base = _jitter(rng, _BUILDING_COLOURS[rng.integers(len(_BUILDING_COLOURS))], 15)
    cv.poly(cam.side(x, z0, z1, 0, height), _shade(base, light), BUILDING)
    # ground floor band (shops) and windows on a floor grid
    cv.poly(cam.side(x, z0, z1, 0, 0.4), _shade(base, light * 0.7), BUILDING)
    glass = _jitter(rng, (70, 85, 105), 20)
    floor_h = rng.uniform(2.8, 3.5)
    bay = rng.uniform(2.2, 3.5)
    win_w, win_h = bay * rng.uniform(0.35, 0.6), floor_h * rng.uniform(0.4, 0.6)
    if z0 < 60:
        for fy in np.arange(floor_h * 1.2, height - floor_h * 0.8, floor_h):
            for bz in np.arange(z0 + 0.5, z1 - win_w, bay):
                k = light * rng.uniform(0.8, 1.25)
                cv.poly(cam.side(x, bz, bz + win_w, fy, fy + win_h), _shade(glass, k), BUILDING)
    # a second, taller building set back behind, sometimes
    if rng.random() < 0.3:
        back = x + np.sign(x) * rng.uniform(8, 20)
        h2 = height + rng.uniform(4, 20)
        cv.poly(cam.side(back, z0, z1, height * 0.5, h2),
                _shade(_jitter(rng, base, 25), light * 0.9), BUILDING)
        cv.poly(cam.side(x, z0, z1, 0, height), _shade(base, light), BUILDING)


def _facade_vegetation(cv: _Canvas, cam: _Camera, rng: np.random.Generator, x: float,
                       z0: float, z1: float, light: float) -> None:
    height = rng.uniform(1.2, 12)
    green = _jitter(rng, (55, 100, 35), 18)
    cv.poly(_bumpy_top(cam, rng, x, z0, z1, 0, height, n=max(4, int((z1 - z0) / 1.5))),
            _shade(green, light), VEGETATION)


def _facade_wall(cv: _Canvas, cam: _Camera, rng: np.random.Generator, x: float,
                 z0: float, z1: float, light: float, kind: int) -> None:
    # what shows above a wall or fence: trees or a building further back
    back = x + np.sign(x) * rng.uniform(3, 8)
    if rng.random() < 0.5:
        _facade_vegetation(cv, cam, rng, back, z0, z1, light)
    else:
        _facade_building(cv, cam, rng, back, z0, z1, light)
    height = rng.uniform(1.0, 2.8)
    if kind == WALL:
        colour = _jitter(rng, (150, 150, 158), 20)
        cv.poly(cam.side(x, z0, z1, 0, height), _shade(colour, light), WALL)
        cv.poly(cam.side(x, z0, z1, height - 0.12, height), _shade(colour, light * 1.15), WALL)
        # concrete blocks: joints make a wall look unlike a facade of the same grey
        joint = _shade(colour, light * 0.72)
        course = rng.uniform(0.3, 0.6)
        for y in np.arange(course, height - 0.12, course):
            cv.line(cam.project(x, y, z0), cam.project(x, y, z1), joint,
                    max(1.0, cam.f * 0.03 / max(z0, 1.0)), WALL)
        for pz in np.arange(z0, min(z1, 50.0), rng.uniform(0.8, 1.6)):
            cv.line(cam.project(x, 0, pz), cam.project(x, height - 0.12, pz), joint,
                    max(1.0, cam.f * 0.03 / pz), WALL)
    else:
        colour = _jitter(rng, (130, 100, 70) if rng.random() < 0.5 else (110, 120, 115), 20)
        cv.poly(cam.side(x, z0, z1, 0, height), _shade(colour, light * 0.8), FENCE)
        # slats / mesh posts, still labelled fence
        for pz in np.arange(z0, z1, rng.uniform(0.5, 1.5)):
            if pz > 50:
                break
            p0, p1 = cam.project(x, 0, pz), cam.project(x, height, pz)
            cv.line(p0, p1, _shade(colour, light * 1.2), cam.f * 0.05 / pz, FENCE)


def _street_end(cv: _Canvas, cam: _Camera, rng: np.random.Generator, z: float) -> None:
    """What closes the street: a row of buildings, trees, or open land."""
    # the metres the image spans at depth z, plus a margin
    xs = np.arange(-z * cam.cx / cam.f - 10, z * (cv.w - cam.cx) / cam.f + 10, rng.uniform(8, 25))
    for x0 in xs:
        x1 = x0 + rng.uniform(8, 25)
        r = rng.random()
        if r < 0.6:
            colour = _jitter(rng, _BUILDING_COLOURS[rng.integers(len(_BUILDING_COLOURS))], 20)
            cv.poly(cam.quad(x0, x1, 0, rng.uniform(5, 30), z), colour, BUILDING)
        elif r < 0.9:
            pts = [cam.project(x0, 0, z)]
            for xx in np.linspace(x0, x1, 6):
                pts.append(cam.project(float(xx), rng.uniform(4, 14), z))
            pts.append(cam.project(x1, 0, z))
            cv.poly(np.round(np.array(pts)).astype(np.int32), _jitter(rng, (60, 95, 40), 15),
                    VEGETATION)


def _ground(cv: _Canvas, cam: _Camera, rng: np.random.Generator, left: float, right: float,
            walk_l: float, walk_r: float, z_end: float) -> None:
    z_near = 0.5
    terrain = _jitter(rng, (150, 145, 85), 20)
    below_horizon = np.array([[-10 * cv.w, int(cam.cy)], [11 * cv.w, int(cam.cy)],
                              [11 * cv.w, 10 * cv.h], [-10 * cv.w, 10 * cv.h]], np.int32)
    cv.poly(below_horizon, terrain, TERRAIN)
    walk = _jitter(rng, (175, 160, 170) if rng.random() < 0.6 else (160, 160, 155), 15)
    curb = _shade(walk, 1.15)
    for edge, width in ((-left, -walk_l), (right, walk_r)):
        if width == 0:
            continue
        cv.poly(cam.ground(edge, edge + width, z_near, z_end), walk, SIDEWALK)
        cv.poly(cam.ground(edge, edge + np.sign(width) * 0.2, z_near, z_end), curb, SIDEWALK)
        # paving joints
        for z in np.arange(1.0, min(z_end, 35.0), rng.uniform(0.6, 1.2)):
            cv.line(cam.project(edge, 0, z), cam.project(edge + width, 0, z),
                    _shade(walk, 0.85), max(1.0, cam.f * 0.02 / z), SIDEWALK)
    asphalt = _jitter(rng, (95, 85, 100), 12)
    cv.poly(cam.ground(-left, right, z_near, z_end), asphalt, ROAD)
    # patches of repaired asphalt
    for _ in range(rng.integers(0, 4)):
        z0 = rng.uniform(3, 40)
        x0 = rng.uniform(-left, right - 1)
        cv.poly(cam.ground(x0, x0 + rng.uniform(0.5, 3), z0, z0 + rng.uniform(1, 6)),
                _shade(asphalt, rng.uniform(0.7, 0.9)), ROAD)
    # lane marks: solid edges, dashed lanes, sometimes a zebra crossing
    paint = (235, 235, 230) if rng.random() < 0.8 else (230, 200, 60)
    for x in (-left + 0.3, right - 0.3):
        cv.poly(cam.ground(x - 0.07, x + 0.07, z_near, z_end), paint, ROAD)
    lanes = np.arange(-left + 3.2, right - 1.5, 3.2)
    dash, gap = rng.uniform(2, 4), rng.uniform(4, 9)
    for x in lanes:
        for z in np.arange(rng.uniform(0, gap), z_end, dash + gap):
            cv.poly(cam.ground(x - 0.08, x + 0.08, z, z + dash), paint, ROAD)
    if rng.random() < 0.25:
        z0 = rng.uniform(6, 25)
        for x in np.arange(-left + 0.5, right - 0.5, 1.0):
            cv.poly(cam.ground(x, x + 0.5, z0, z0 + 3), (225, 225, 220), ROAD)


def _pole(cv: _Canvas, cam: _Camera, rng: np.random.Generator, x: float, z: float) -> None:
    height = rng.uniform(3.5, 9)
    r = rng.uniform(0.09, 0.16)
    grey = _jitter(rng, (120, 120, 125), 25)
    cv.poly(cam.quad(x - r, x + r, 0, height, z), grey, POLE)
    kind = rng.random()
    if kind < 0.35:  # traffic sign
        y = rng.uniform(2.0, min(3.2, height - 0.3))
        s = rng.uniform(0.35, 0.5)
        cx, cy = cam.project(x, y, z)
        rad = cam.f * s / z
        shape = rng.integers(4)
        if shape == 0:  # prohibition: red ring, white inside
            cv.circle((cx, cy), rad, (200, 20, 25), SIGN)
            cv.circle((cx, cy), rad * 0.75, (240, 240, 240), SIGN)
        elif shape == 1:  # mandatory: blue disc, white arrow
            cv.circle((cx, cy), rad, (20, 70, 170), SIGN)
            cv.line((cx, cy + rad * 0.5), (cx, cy - rad * 0.5), (240, 240, 240), rad * 0.25, SIGN)
        elif shape == 2:  # warning: red triangle
            tri = np.round(np.array([[cx - rad, cy + rad * 0.8], [cx + rad, cy + rad * 0.8],
                                     [cx, cy - rad * 0.9]])).astype(np.int32)
            cv.poly(tri, (210, 25, 25), SIGN)
            cv.poly(np.round((tri - [cx, cy]) * 0.6 + [cx, cy + rad * 0.1]).astype(np.int32),
                    (245, 240, 235), SIGN)
        else:  # information: blue or yellow rectangle
            colour = (20, 80, 170) if rng.random() < 0.6 else (235, 200, 20)
            cv.poly(cam.quad(x - s * 1.2, x + s * 1.2, y - s * 0.8, y + s * 0.8, z), colour, SIGN)
    elif kind < 0.6:  # traffic light (head at the top)
        body = (35, 35, 35) if rng.random() < 0.7 else (200, 170, 20)
        y1 = min(height, rng.uniform(3.2, 5.5))
        cv.poly(cam.quad(x - r, x + r, 0, y1, z), grey, POLE)
        w2, hh = rng.uniform(0.18, 0.25), rng.uniform(0.85, 1.1)
        cv.poly(cam.quad(x - w2, x + w2, y1 - hh, y1, z), body, LIGHT)
        lit = rng.integers(3)
        for i, col in enumerate(((230, 30, 20), (240, 170, 20), (40, 220, 90))):
            yy = y1 - hh * (0.2 + 0.3 * i)
            cx, cy = cam.project(x, yy, z)
            cv.circle((cx, cy), cam.f * w2 * 0.6 / z, col if i == lit else _shade(col, 0.3), LIGHT)
    elif kind < 0.85:  # street lamp: arm over the road
        arm = -np.sign(x) * rng.uniform(1.0, 2.0)
        cv.poly(cam.quad(min(x, x + arm), max(x, x + arm), height - 0.15, height, z), grey, POLE)
        cv.poly(cam.quad(x + arm - 0.3 * np.sign(arm), x + arm, height - 0.3, height, z),
                (220, 220, 200), POLE)


def _tree(cv: _Canvas, cam: _Camera, rng: np.random.Generator, x: float, z: float) -> None:
    height = rng.uniform(4, 10)
    trunk = rng.uniform(0.12, 0.22)
    cv.poly(cam.quad(x - trunk, x + trunk, 0, height * 0.55, z), _jitter(rng, (90, 65, 45), 15),
            VEGETATION)
    green = _jitter(rng, (60, 105, 35), 20)
    crown = rng.uniform(1.3, 2.8)
    for _ in range(rng.integers(4, 8)):
        ox, oy = rng.uniform(-crown * 0.6, crown * 0.6), rng.uniform(-crown * 0.4, crown * 0.5)
        c = cam.project(x + ox, height - crown * 0.8 + oy, z)
        cv.circle(c, cam.f * crown * rng.uniform(0.45, 0.8) / z,
                  _shade(green, rng.uniform(0.75, 1.2)), VEGETATION)


def _person(cv: _Canvas, cam: _Camera, rng: np.random.Generator, x: float, z: float) -> None:
    height = rng.uniform(1.55, 1.95)
    shirt = _CLOTHES[rng.integers(len(_CLOTHES))]
    trousers = _CLOTHES[rng.integers(len(_CLOTHES))]
    skin = _SKIN[rng.integers(len(_SKIN))]
    hw = 0.22 * height / 1.75
    stride = rng.uniform(-0.15, 0.15)
    legs = height * 0.47
    for dx, sx in ((-hw * 0.5, stride), (hw * 0.5, -stride)):
        top = cam.project(x + dx, legs, z)
        foot = cam.project(x + dx + sx, 0, z)
        cv.line(top, foot, _shade(trousers, 0.9), cam.f * hw * 0.75 / z, PERSON)
    cv.poly(cam.quad(x - hw, x + hw, legs, height * 0.84, z), shirt, PERSON)
    for dx in (-hw * 1.05, hw * 1.05):
        cv.line(cam.project(x + dx, height * 0.82, z), cam.project(x + dx * 1.15, height * 0.5, z),
                _shade(shirt, 0.85), cam.f * hw * 0.4 / z, PERSON)
    cv.circle(cam.project(x, height * 0.92, z), cam.f * height * 0.075 / z, skin, PERSON)
    if rng.random() < 0.5:  # hair
        cv.circle(cam.project(x, height * 0.95, z), cam.f * height * 0.06 / z,
                  _jitter(rng, (50, 35, 25), 20), PERSON)


def _vehicle(cv: _Canvas, cam: _Camera, rng: np.random.Generator, x: float, z: float,
             label: int) -> None:
    """Rear (or front) view of a vehicle at depth z, plus its visible side."""
    if label == CAR:
        w, h, length = rng.uniform(1.7, 1.95), rng.uniform(1.35, 1.6), rng.uniform(3.8, 4.8)
        colour = _jitter(rng, _CAR_COLOURS[rng.integers(len(_CAR_COLOURS))], 12)
    elif label == TRUCK:
        w, h, length = rng.uniform(2.3, 2.55), rng.uniform(2.8, 3.8), rng.uniform(6, 10)
        colour = _jitter(rng, [(235, 235, 235), (200, 200, 205), (60, 90, 160), (180, 40, 30),
                               (240, 240, 200)][rng.integers(5)], 10)
    else:
        w, h, length = 2.55, rng.uniform(3.0, 3.4), rng.uniform(10, 13)
        colour = _jitter(rng, [(230, 200, 30), (200, 30, 30), (240, 240, 240), (40, 110, 180),
                               (60, 150, 70)][rng.integers(5)], 10)
    x0, x1 = x - w / 2, x + w / 2
    # shadow on the road
    cv.poly(cam.ground(x0 - 0.1, x1 + 0.1, z - 0.3, z + length), (35, 32, 38), ROAD)
    # the side that faces the camera
    side_x = x0 if x0 > 0 else (x1 if x1 < 0 else None)
    if side_x is not None:
        cv.poly(cam.side(side_x, z, z + length, 0.25, h * (0.62 if label == CAR else 1.0)),
                _shade(colour, 0.72), label)
        if label == CAR:
            cv.poly(cam.side(side_x, z + length * 0.25, z + length * 0.8, h * 0.6, h),
                    (45, 50, 60), label)
        elif label == BUS:
            cv.poly(cam.side(side_x, z + 0.5, z + length - 0.5, h * 0.5, h * 0.85),
                    (40, 50, 65), label)
        for wz in (z + 0.8, z + length - 0.8):  # wheels
            cv.poly(cam.side(side_x, wz - 0.35, wz + 0.35, 0, 0.6), (20, 20, 22), label)
    # the rear face
    body_top = h * (0.62 if label == CAR else 1.0)
    cv.poly(cam.quad(x0, x1, 0.2, body_top, z), colour, label)
    cv.poly(cam.quad(x0 + 0.1, x0 + 0.35, 0.0, 0.3, z), (20, 20, 22), label)
    cv.poly(cam.quad(x1 - 0.35, x1 - 0.1, 0.0, 0.3, z), (20, 20, 22), label)
    if label == CAR:
        cabin = np.round(np.array([cam.project(x0 + 0.1, body_top, z),
                                   cam.project(x1 - 0.1, body_top, z),
                                   cam.project(x1 - 0.3, h, z + 0.4),
                                   cam.project(x0 + 0.3, h, z + 0.4)]))
        cv.poly(cabin.astype(np.int32), _shade(colour, 0.9), label)
        glass = np.round(np.array([cam.project(x0 + 0.2, body_top + 0.03, z + 0.05),
                                   cam.project(x1 - 0.2, body_top + 0.03, z + 0.05),
                                   cam.project(x1 - 0.35, h - 0.06, z + 0.38),
                                   cam.project(x0 + 0.35, h - 0.06, z + 0.38)]))
        cv.poly(glass.astype(np.int32), _jitter(rng, (40, 45, 55), 10), label)
    elif label == BUS:
        cv.poly(cam.quad(x0 + 0.15, x1 - 0.15, h * 0.55, h * 0.9, z), (40, 50, 65), label)
    else:
        cv.poly(cam.quad(x0 + 0.05, x1 - 0.05, 0.6, h - 0.05, z), _shade(colour, 0.93), label)
    for lx in (x0 + 0.1, x1 - 0.35):  # tail lights
        cv.poly(cam.quad(lx, lx + 0.25, body_top * 0.62, body_top * 0.8, z), (200, 20, 20), label)
    cv.poly(cam.quad(x - 0.25, x + 0.25, 0.35, 0.47, z), (235, 235, 230), label)


def _ego_hood(cv: _Canvas, rng: np.random.Generator) -> None:
    """The camera car's bonnet, labelled ignore like Cityscapes' ego vehicle."""
    h, w = cv.h, cv.w
    top = h * rng.uniform(0.88, 0.95)
    xs = np.linspace(0, w, 17)
    ys = top + (h - top) * 0.6 * ((xs - w / 2) / (w / 2)) ** 2
    pts = np.round(np.concatenate([np.stack([xs, ys], 1), [[w, h], [0, h]]])).astype(np.int32)
    cv.poly(pts, _jitter(rng, (40, 40, 45), 20), IGNORE)


def _finish(cv: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """Texture, lighting, white balance, blur and noise; labels are untouched."""
    h, w = cv.h, cv.w
    lab = cv.labels
    fine = cv2.resize(rng.standard_normal((h // 2 + 1, w // 2 + 1), np.float32), (w, h),
                      interpolation=cv2.INTER_LINEAR)
    blotch = cv2.resize(rng.standard_normal((h // 16 + 2, w // 16 + 2), np.float32), (w, h),
                        interpolation=cv2.INTER_CUBIC)
    # light falls off to one side (sun position) and towards the corners (vignetting)
    yy = np.linspace(-1, 1, h // 8 + 1, dtype=np.float32)[:, None]
    xx = np.linspace(-1, 1, w // 8 + 1, dtype=np.float32)[None, :]
    light = 1.0 + rng.uniform(-0.12, 0.12) * xx - 0.12 * rng.random() * (xx ** 2 + yy ** 2)
    light = cv2.resize(light, (w, h), interpolation=cv2.INTER_LINEAR)
    gain = (1.0 + _FINE[lab] * fine + _BLOTCH[lab] * blotch) * light
    exposure = rng.uniform(0.7, 1.25)
    balance = np.array([rng.uniform(0.93, 1.07), 1.0, rng.uniform(0.93, 1.07)],
                       np.float32) * exposure
    img = cv.rgb.astype(np.float32)
    img *= gain[..., None]
    img *= balance
    if rng.random() < 0.7:
        sigma = rng.uniform(0.4, 1.0) * w / 1024
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    # sensor noise: a cheap grain from the same kind of field, with its own strength
    grain = cv2.resize(rng.standard_normal((h // 2 + 1, w // 2 + 1), np.float32), (w, h),
                       interpolation=cv2.INTER_NEAREST)
    img += (rng.uniform(1.0, 5.0) * grain)[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------- scene composition
# The steps below draw from one generator in a fixed order: reordering any two draws
# changes every scene of every seed (test_synthetic.py holds hashes of a few).

@dataclass
class _Street:
    """The street's cross-section in metres and how far it runs."""

    left: float      # road half-width to the left of the camera
    right: float     # and to the right
    walk_l: float    # sidewalk widths (0: none)
    walk_r: float
    z_end: float     # depth where the street ends

    def sides(self) -> Tuple[Tuple[int, float, float], ...]:
        """``(sign, road edge, sidewalk width)`` of the left and the right side."""
        return ((-1, self.left, self.walk_l), (1, self.right, self.walk_r))


class _Objects:
    """Things drawn after the facades, kept with their depth and drawn far to near."""

    def __init__(self, cv: _Canvas, cam: _Camera, rng: np.random.Generator) -> None:
        self.cv, self.cam, self.rng = cv, cam, rng
        self.items: List[Tuple[float, Callable[[], None]]] = []

    def add(self, z: float, fn: Callable[..., None], x: float, *extra) -> None:
        self.items.append((z, lambda: fn(self.cv, self.cam, self.rng, x, z, *extra)))

    def draw(self) -> None:
        for _, draw in sorted(self.items, key=lambda item: -item[0]):
            draw()


def _camera(rng: np.random.Generator, h: int, w: int) -> _Camera:
    return _Camera(f=w * rng.uniform(0.75, 1.05), cx=w * rng.uniform(0.42, 0.58),
                   cy=h * rng.uniform(0.36, 0.5), h=rng.uniform(1.2, 1.7))


def _street(rng: np.random.Generator) -> _Street:
    left, right = rng.uniform(2.0, 9.0), rng.uniform(2.0, 9.0)
    walk_l = rng.uniform(1.5, 5.0) if rng.random() < 0.9 else 0.0
    walk_r = rng.uniform(1.5, 5.0) if rng.random() < 0.9 else 0.0
    return _Street(left, right, walk_l, walk_r, rng.uniform(50, 200))


def _facade_segments(rng: np.random.Generator, z_end: float) -> List[Tuple[float, float]]:
    """Depth intervals of one side's facades, with an occasional gap between them."""
    segments: List[Tuple[float, float]] = []
    z = rng.uniform(0.3, 3.0)
    while z < z_end:
        length = rng.uniform(6, 30)
        segments.append((z, min(z + length, z_end)))
        z += length + (rng.uniform(2, 10) if rng.random() < 0.25 else 0.0)
    return segments


def _facade(cv: _Canvas, cam: _Camera, rng: np.random.Generator, x: float, z0: float,
            z1: float, light: float) -> None:
    """One facade segment: a building, vegetation, a wall, a fence, or open land."""
    r = rng.random()
    if r < 0.52:
        _facade_building(cv, cam, rng, x, z0, z1, light)
    elif r < 0.72:
        _facade_vegetation(cv, cam, rng, x, z0, z1, light)
    elif r < 0.83:
        _facade_wall(cv, cam, rng, x, z0, z1, light, WALL)
    elif r < 0.93:
        _facade_wall(cv, cam, rng, x, z0, z1, light, FENCE)
    # else: open land, the terrain shows up to the horizon


def _facades(cv: _Canvas, cam: _Camera, rng: np.random.Generator, street: _Street) -> None:
    """Facades along both sides, drawn far to near (they never overlap across sides)."""
    sun = rng.uniform(0.75, 1.1)
    for sign, edge, walk in street.sides():
        verge = rng.uniform(0.5, 5.0) if rng.random() < 0.4 else 0.0
        x = sign * (edge + walk + verge)
        light = sun * (1.0 if sign > 0 else rng.uniform(0.7, 0.95))
        for z0, z1 in reversed(_facade_segments(rng, street.z_end)):
            _facade(cv, cam, rng, x, z0, z1, light)


def _sidewalk_objects(objects: _Objects, rng: np.random.Generator, sign: int, edge: float,
                      walk: float, z_end: float) -> None:
    """Poles at the kerb, trees and persons on one sidewalk."""
    for z in np.arange(rng.uniform(3, 15), z_end * 0.6, rng.uniform(10, 25)):
        objects.add(float(z), _pole, sign * (edge + 0.45))
    for z in np.arange(rng.uniform(4, 20), z_end * 0.5, rng.uniform(8, 20)):
        if rng.random() < 0.5:
            objects.add(float(z), _tree, sign * (edge + walk * rng.uniform(0.5, 0.9)))
    for _ in range(rng.poisson(3)):
        objects.add(float(rng.uniform(3, 45)), _person, sign * (edge + rng.uniform(0.4, walk)))


def _parked_vehicles(objects: _Objects, rng: np.random.Generator, sign: int,
                     edge: float) -> None:
    for z in np.arange(rng.uniform(3, 12), 70, rng.uniform(5.5, 12)):
        if rng.random() < 0.45:
            kind = CAR if rng.random() < 0.88 else TRUCK
            objects.add(float(z), _vehicle, sign * (edge - 1.1), kind)


def _moving_vehicle_kind(rng: np.random.Generator) -> int:
    r = rng.random()
    return CAR if r < 0.75 else (TRUCK if r < 0.88 else BUS)


def _traffic(objects: _Objects, rng: np.random.Generator, street: _Street) -> None:
    """Vehicles in the lanes, one ahead in ours, and sometimes pedestrians crossing."""
    for lane in np.arange(-street.left + 1.6, street.right - 1.2, 3.2):
        if abs(lane) < 1.0:
            continue  # the camera car's own lane stays clear near the camera
        for _ in range(rng.poisson(1.2)):
            kind = _moving_vehicle_kind(rng)
            objects.add(float(rng.uniform(6, 80)), _vehicle, float(lane), kind)
    for _ in range(rng.poisson(1.0)):  # a vehicle ahead in our lane, at a distance
        kind = _moving_vehicle_kind(rng)
        objects.add(float(rng.uniform(12, 60)), _vehicle, float(rng.uniform(-0.3, 0.3)), kind)
    if rng.random() < 0.3:  # pedestrians crossing
        z = float(rng.uniform(6, 25))
        for _ in range(rng.integers(1, 4)):
            objects.add(z + rng.uniform(-0.5, 0.5), _person,
                        float(rng.uniform(-street.left, street.right)))


def _objects(cv: _Canvas, cam: _Camera, rng: np.random.Generator, street: _Street) -> None:
    """Everything in front of the facades, drawn far to near so nearer things occlude."""
    objects = _Objects(cv, cam, rng)
    for sign, edge, walk in street.sides():
        if walk > 0:
            _sidewalk_objects(objects, rng, sign, edge, walk, street.z_end)
        _parked_vehicles(objects, rng, sign, edge)
    _traffic(objects, rng, street)
    objects.draw()


def generate_scene(seed: int,
                   size: Tuple[int, int] = (512, 1024)) -> Tuple[np.ndarray, np.ndarray]:
    """One street scene, fully determined by ``seed``.

    Args:
        seed: any int; the same seed and size give the same scene.
        size: ``(H, W)`` in pixels; the scene geometry scales with it.

    Returns:
        ``rgb``: uint8 ``(H, W, 3)`` in RGB order; ``labels``: uint8 ``(H, W)``
        Cityscapes trainIds, 255 = ignore (the camera car's bonnet, when present).
    """
    h, w = int(size[0]), int(size[1])
    if h < 8 or w < 8:
        raise ValueError(f"scene size must be at least 8x8, got {size}")
    rng = np.random.default_rng(np.random.SeedSequence(int(seed) & ((1 << 64) - 1)))
    cam = _camera(rng, h, w)
    cv = _Canvas(h, w)
    _sky(cv, rng, cam.cy)
    street = _street(rng)
    _street_end(cv, cam, rng, street.z_end)
    _ground(cv, cam, rng, street.left, street.right, street.walk_l, street.walk_r, street.z_end)
    _facades(cv, cam, rng, street)
    _objects(cv, cam, rng, street)
    if rng.random() < 0.3:
        _ego_hood(cv, rng)
    rgb = _finish(cv, rng)
    return rgb, cv.labels.copy()
