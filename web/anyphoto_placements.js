/**
 * Placements model of the AnyPhoto location editor: pure logic, no DOM, no ComfyUI.
 *
 * The contract is the placements JSON of anyphoto_core/placements.py:
 *
 *     {"version": 1, "units": "fraction", "people": [{"box": [x1, y1, x2, y2]}, ...]}
 *
 * Person k in `people` is identity k (the order of the references). A person may instead carry
 * `{"landmarks": [[x, y] x 5]}`. A bare list of boxes `[[x1, y1, x2, y2], ...]` is accepted too:
 * fractions if every value is within [0, 1], pixels otherwise (the Python rule).
 *
 * In memory a *document* is `{people: Person[], extra: object}`:
 *   - every coordinate is a fraction of the output width (x) or height (y), so a layout stays
 *     valid when the output size changes; "px" input is divided by width/height when parsed;
 *   - a Person is the person's JSON object (a shallow copy) with `box` or `landmarks` in
 *     fractions; any other field of a person is kept and written back unchanged;
 *   - `extra` holds the unknown top-level fields, written back unchanged.
 * Serializing always writes version 1 and units "fraction", so for valid fraction input
 * `parsePlacements(serializePlacements(doc))` deep-equals `doc` and the text round-trips.
 *
 * Canvas geometry uses a *rect* `{x, y, w, h}` (canvas pixels): where the output image is drawn
 * inside the widget. Edit operations return new values (nothing is mutated) rounded to 6
 * decimals, the precision the Python side writes.
 */

export const PLACEMENTS_VERSION = 1;

/** Person k (0-based) is drawn in PALETTE[k % PALETTE.length]; readable on dark and light. */
export const PALETTE = Object.freeze([
    "#e6194b", // red
    "#3cb44b", // green
    "#4363d8", // blue
    "#f58231", // orange
    "#911eb4", // purple
    "#42d4f4", // cyan
    "#f032e6", // magenta
    "#bfef45", // lime
    "#fabed4", // pink
    "#ffe119", // yellow
]);

/** Width / height (pixels) of the nominal detector face box of an ArcFace-aligned crop (78 x 101,
 * TEMPLATE_FACE_BOX in anyphoto_core/geometry.py); used when a box is drawn with Shift held. */
export const FACE_BOX_RATIO = 78 / 101;

/** Error for placements text that cannot be read; the message says what and where. */
export class PlacementsError extends Error {
    constructor(message) {
        super(message);
        this.name = "PlacementsError";
    }
}

/** Colour of person `index` (0-based). */
export function personColor(index) {
    const n = PALETTE.length;
    return PALETTE[((index % n) + n) % n];
}

/** Round to 6 decimals (what placements_to_json writes). */
export function round6(v) {
    return Math.round(v * 1e6) / 1e6;
}

function clamp(v, lo, hi) {
    return Math.min(hi, Math.max(lo, v));
}

function isFiniteNumber(v) {
    return typeof v === "number" && Number.isFinite(v);
}

function validateBox(box, what) {
    if (!Array.isArray(box) || box.length !== 4 || !box.every((v) => typeof v === "number")) {
        throw new PlacementsError(`${what} must be 4 numbers x1,y1,x2,y2, got ${JSON.stringify(box)}`);
    }
    if (!box.every(isFiniteNumber)) {
        throw new PlacementsError(`${what} contains NaN or infinite values: ${JSON.stringify(box)}`);
    }
    const [x1, y1, x2, y2] = box;
    if (x2 <= x1 || y2 <= y1) {
        throw new PlacementsError(`${what} ${JSON.stringify(box)} is empty: need x2 > x1 and y2 > y1`);
    }
    return [x1, y1, x2, y2];
}

function validateLandmarks(points, what) {
    const ok = Array.isArray(points) && points.length === 5
        && points.every((p) => Array.isArray(p) && p.length === 2 && p.every(isFiniteNumber));
    if (!ok) {
        throw new PlacementsError(`${what} must be 5 finite [x, y] points, got ${JSON.stringify(points)}`);
    }
    return points.map((p) => [p[0], p[1]]);
}

/** An empty document. */
export function emptyDocument() {
    return { people: [], extra: {} };
}

/**
 * Parse placements JSON (text or an already-decoded value) into a document in fractions.
 * `width`/`height` (output pixels) are needed only for "px" input. Empty text gives an empty
 * document. Throws PlacementsError naming the offending person and field.
 */
export function parsePlacements(textOrObj, width, height) {
    let obj = textOrObj;
    if (typeof textOrObj === "string") {
        const text = textOrObj.trim();
        if (!text) return emptyDocument();
        try {
            obj = JSON.parse(text);
        } catch (err) {
            throw new PlacementsError(`placements are not valid JSON (${err.message})`);
        }
    }
    if (Array.isArray(obj)) {
        const boxes = obj.map((b, i) => validateBox(b, `box ${i + 1}`));
        const units = boxes.every((b) => b.every((v) => v >= 0 && v <= 1)) ? "fraction" : "px";
        obj = { version: PLACEMENTS_VERSION, units, people: boxes.map((box) => ({ box })) };
    }
    if (obj === null || typeof obj !== "object" || !Array.isArray(obj.people)) {
        throw new PlacementsError('placements must be {"people": [...]} or a list of boxes');
    }
    const { version = PLACEMENTS_VERSION, units = "fraction", people, ...extra } = obj;
    if (version !== PLACEMENTS_VERSION) {
        throw new PlacementsError(`placements version ${version} is not supported (expected ${PLACEMENTS_VERSION})`);
    }
    if (units !== "fraction" && units !== "px") {
        throw new PlacementsError(`placements "units" must be "fraction" or "px", got ${JSON.stringify(units)}`);
    }
    let sx = 1;
    let sy = 1;
    if (units === "px") {
        if (!(width > 0 && height > 0)) {
            throw new PlacementsError("placements in px need a positive output width and height");
        }
        sx = width;
        sy = height;
    }
    const parsed = people.map((person, i) => {
        const who = `person ${i + 1}`;
        if (person === null || typeof person !== "object" || Array.isArray(person)) {
            throw new PlacementsError(`${who}: expected an object with a 'box' or 'landmarks' field`);
        }
        const out = { ...person };
        if ("landmarks" in person) {
            out.landmarks = validateLandmarks(person.landmarks, `${who} landmarks`).map(([x, y]) => [x / sx, y / sy]);
        } else if ("box" in person) {
            const [x1, y1, x2, y2] = validateBox(person.box, `${who} box`);
            out.box = [x1 / sx, y1 / sy, x2 / sx, y2 / sy];
        } else {
            throw new PlacementsError(`${who}: needs a 'box' [x1,y1,x2,y2] or 'landmarks' [[x,y] x5]`);
        }
        return out;
    });
    return { people: parsed, extra };
}

/** Compact JSON with a space after ':' and ',' (JSON.stringify for strings and numbers). */
function formatValue(value) {
    if (Array.isArray(value)) return `[${value.map(formatValue).join(", ")}]`;
    if (value !== null && typeof value === "object") {
        return `{${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${formatValue(v)}`).join(", ")}}`;
    }
    return JSON.stringify(value);
}

/**
 * Placements JSON text of a document: version 1, units "fraction", one person per line, then the
 * unknown top-level fields.
 */
export function serializePlacements(doc) {
    const head = `{"version": ${PLACEMENTS_VERSION}, "units": "fraction", "people": [`;
    const people = doc.people.map((p) => `  ${formatValue(p)}`).join(",\n");
    const tail = Object.entries(doc.extra || {})
        .filter(([k]) => !["version", "units", "people"].includes(k))
        .map(([k, v]) => `, ${JSON.stringify(k)}: ${formatValue(v)}`)
        .join("");
    return people ? `${head}\n${people}\n]${tail}}` : `${head}]${tail}}`;
}

/** Box with ordered corners, clamped into [0, 1] x [0, 1]. */
export function normalizeBox(box) {
    const [a, b, c, d] = box;
    return [
        clamp(Math.min(a, c), 0, 1), clamp(Math.min(b, d), 0, 1),
        clamp(Math.max(a, c), 0, 1), clamp(Math.max(b, d), 0, 1),
    ].map(round6);
}

/** The fraction box a person occupies on the canvas: its box, or the bounds of its landmarks. */
export function personBounds(person) {
    if (person.box) return person.box;
    const xs = person.landmarks.map((p) => p[0]);
    const ys = person.landmarks.map((p) => p[1]);
    return [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
}

/**
 * Where an output image of `outW` x `outH` is drawn inside a widget area of `areaW` x `areaH`
 * canvas pixels: the largest rect of the output's aspect ratio with `margin` pixels around it,
 * centred. Returns {x, y, w, h}; a degenerate input gives a zero-size rect.
 */
export function fitRect(areaW, areaH, outW, outH, margin = 0) {
    const aw = Math.max(0, areaW - 2 * margin);
    const ah = Math.max(0, areaH - 2 * margin);
    if (!(outW > 0 && outH > 0) || aw === 0 || ah === 0) return { x: margin, y: margin, w: 0, h: 0 };
    const s = Math.min(aw / outW, ah / outH);
    const w = outW * s;
    const h = outH * s;
    return { x: margin + (aw - w) / 2, y: margin + (ah - h) / 2, w, h };
}

/** Canvas point of a fraction point. */
export function toCanvas(rect, fx, fy) {
    return [rect.x + fx * rect.w, rect.y + fy * rect.h];
}

/** Fraction point of a canvas point (not clamped: outside the rect gives values outside [0, 1]). */
export function toFraction(rect, x, y) {
    return [rect.w ? (x - rect.x) / rect.w : 0, rect.h ? (y - rect.y) / rect.h : 0];
}

/** Canvas-pixel box {x1, y1, x2, y2} of a fraction box. */
export function boxToCanvas(rect, box) {
    const [x1, y1] = toCanvas(rect, box[0], box[1]);
    const [x2, y2] = toCanvas(rect, box[2], box[3]);
    return { x1, y1, x2, y2 };
}

export const CORNERS = Object.freeze(["nw", "ne", "sw", "se"]);

/** Canvas point of a corner ("nw", "ne", "sw", "se") of a canvas box. */
export function cornerPoint(px, corner) {
    return [corner.endsWith("w") ? px.x1 : px.x2, corner.startsWith("n") ? px.y1 : px.y2];
}

/**
 * The small delete button of a canvas box: a square of side `size` inside its top-right corner,
 * left of the resize handle; null when the box is too small to carry it.
 */
export function deleteButtonRect(px, size = 14, handle = 7) {
    if (px.x2 - px.x1 < 3 * size + 2 * handle || px.y2 - px.y1 < 2 * size + handle) return null;
    return { x: px.x2 - handle - size - 2, y: px.y1 + 3, w: size, h: size };
}

/**
 * What is under canvas point (x, y): {index, part} with part one of the CORNERS (resize; boxes
 * only), "delete" (the delete button), "move" (inside); or null. The last person is drawn on top
 * and wins. `handle` is the half-size of a corner handle, canvas pixels.
 */
export function hitTest(people, rect, x, y, { handle = 7, deleteSize = 14 } = {}) {
    for (let i = people.length - 1; i >= 0; i--) {
        const px = boxToCanvas(rect, personBounds(people[i]));
        if (people[i].box) {
            for (const corner of CORNERS) {
                const [cx, cy] = cornerPoint(px, corner);
                if (Math.abs(x - cx) <= handle && Math.abs(y - cy) <= handle) return { index: i, part: corner };
            }
        }
        const del = deleteButtonRect(px, deleteSize, handle);
        if (del && x >= del.x && x <= del.x + del.w && y >= del.y && y <= del.y + del.h) {
            return { index: i, part: "delete" };
        }
        if (x >= px.x1 && x <= px.x2 && y >= px.y1 && y <= px.y2) return { index: i, part: "move" };
    }
    return null;
}

/** A box translated by (dx, dy) fractions, shifted back so it stays inside the image. */
export function moveBox(box, dx, dy) {
    const [x1, y1, x2, y2] = box;
    const mx = clamp(dx, -x1, 1 - x2);
    const my = clamp(dy, -y1, 1 - y2);
    return [x1 + mx, y1 + my, x2 + mx, y2 + my].map(round6);
}

/** Landmarks translated by (dx, dy) fractions, stopped at the image border. */
export function moveLandmarks(points, dx, dy) {
    const [x1, y1, x2, y2] = personBounds({ landmarks: points });
    const mx = clamp(dx, -x1, 1 - x2);
    const my = clamp(dy, -y1, 1 - y2);
    return points.map(([x, y]) => [round6(x + mx), round6(y + my)]);
}

/** A person moved by (dx, dy) fractions (box or landmarks). */
export function movePerson(person, dx, dy) {
    return person.box
        ? { ...person, box: moveBox(person.box, dx, dy) }
        : { ...person, landmarks: moveLandmarks(person.landmarks, dx, dy) };
}

/**
 * The box spanned by a fixed corner (ax, ay) and a dragged point (fx, fy), fractions, clamped to
 * the image. `aspect` is output width / height. `minSize` is the smallest side as a fraction of the
 * output height (the same pixel length on both axes: minSize / aspect of the width). With `ratio`
 * (pixel width / height) the box keeps that shape, grown to cover the dragged point.
 */
export function boxFromAnchor(ax, ay, fx, fy, { aspect = 1, minSize = 0.02, ratio = null } = {}) {
    ax = clamp(ax, 0, 1);
    ay = clamp(ay, 0, 1);
    const sx = fx >= ax ? 1 : -1;
    const sy = fy >= ay ? 1 : -1;
    // Room from the anchor to the border in the drag direction (fractions).
    const roomX = sx > 0 ? 1 - ax : ax;
    const roomY = sy > 0 ? 1 - ay : ay;
    let w = Math.min(Math.abs(clamp(fx, 0, 1) - ax), roomX); // fraction of width
    let h = Math.min(Math.abs(clamp(fy, 0, 1) - ay), roomY); // fraction of height
    if (ratio) {
        // Pixel sizes in units of the output height: wp = w * aspect, hp = h.
        let wp = Math.max(w * aspect, h * ratio);
        let hp = wp / ratio;
        const shrink = Math.min(1, (roomX * aspect) / wp || 1, roomY / hp || 1);
        wp *= shrink;
        hp *= shrink;
        w = wp / aspect;
        h = hp;
    }
    w = Math.max(w, minSize / aspect);
    h = Math.max(h, minSize);
    let x1 = sx > 0 ? ax : ax - w;
    let y1 = sy > 0 ? ay : ay - h;
    x1 = clamp(x1, 0, Math.max(0, 1 - w));
    y1 = clamp(y1, 0, Math.max(0, 1 - h));
    return normalizeBox([x1, y1, x1 + w, y1 + h]);
}

/** A box whose `corner` is dragged to (fx, fy); the opposite corner stays. Options as boxFromAnchor;
 * `keepRatio` keeps the box's current pixel proportions. */
export function resizeBox(box, corner, fx, fy, { aspect = 1, minSize = 0.02, keepRatio = false } = {}) {
    const [x1, y1, x2, y2] = box;
    const ax = corner.endsWith("w") ? x2 : x1;
    const ay = corner.startsWith("n") ? y2 : y1;
    const ratio = keepRatio ? ((x2 - x1) * aspect) / (y2 - y1) : null;
    return boxFromAnchor(ax, ay, fx, fy, { aspect, minSize, ratio });
}

/** People with `person` appended. */
export function addPerson(people, person) {
    return [...people, person];
}

/** People without person `index`. */
export function removePerson(people, index) {
    return people.filter((_, i) => i !== index);
}

/** People with person `from` moved to position `to` (0-based; others shift; `to` is clamped). */
export function reorderPerson(people, from, to) {
    if (from < 0 || from >= people.length) return people.slice();
    const out = people.slice();
    const [p] = out.splice(from, 1);
    out.splice(clamp(to, 0, out.length), 0, p);
    return out;
}
