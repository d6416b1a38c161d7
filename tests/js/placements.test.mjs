// Unit tests of web/anyphoto_placements.js (pure logic), run with `node --test`.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
    FACE_BOX_RATIO,
    PALETTE,
    PlacementsError,
    addPerson,
    boxFromAnchor,
    boxToCanvas,
    deleteButtonRect,
    fitRect,
    hitTest,
    moveBox,
    movePerson,
    normalizeBox,
    parsePlacements,
    personColor,
    removePerson,
    reorderPerson,
    resizeBox,
    serializePlacements,
    toCanvas,
    toFraction,
} from "../../web/anyphoto_placements.js";

const close = (a, b, tol = 1e-6) => assert.ok(Math.abs(a - b) <= tol, `${a} != ${b} (tol ${tol})`);
const closeAll = (a, b, tol = 1e-6) => {
    assert.equal(a.length, b.length);
    a.forEach((v, i) => close(v, b[i], tol));
};

test("canonical fraction JSON round-trips exactly, text and document", () => {
    const text = JSON.stringify({
        version: 1,
        units: "fraction",
        people: [{ box: [0.1, 0.2, 0.3, 0.45] }, { box: [0.55, 0.123456789, 0.9, 0.6] }],
    });
    const doc = parsePlacements(text, 1024, 768);
    assert.deepEqual(doc.people[1].box, [0.55, 0.123456789, 0.9, 0.6]);
    const out = serializePlacements(doc);
    assert.deepEqual(JSON.parse(out), JSON.parse(text));
    assert.deepEqual(parsePlacements(out, 1024, 768), doc);
    assert.equal(serializePlacements(parsePlacements(out, 1, 1)), out);
});

test("unknown fields of people and of the document are kept", () => {
    const obj = {
        version: 1,
        people: [{ box: [0, 0, 0.5, 0.5], name: "Ann", tags: ["a", { b: 1 }] }, { landmarks: [[0.1, 0.2], [0.3, 0.2], [0.2, 0.3], [0.12, 0.4], [0.28, 0.4]] }],
        note: "from a layout photo",
        meta: { source: "x", n: [1, 2] },
    };
    const doc = parsePlacements(JSON.stringify(obj), 100, 100);
    assert.deepEqual(doc.extra, { note: "from a layout photo", meta: { source: "x", n: [1, 2] } });
    const back = JSON.parse(serializePlacements(doc));
    assert.deepEqual(back, { ...obj, units: "fraction" });
    assert.deepEqual(parsePlacements(back, 100, 100), doc);
});

test("serialized text is one person per line and plain JSON", () => {
    const doc = { people: [{ box: [0.1, 0.1, 0.2, 0.2] }, { box: [0.5, 0.5, 0.7, 0.8] }], extra: {} };
    const lines = serializePlacements(doc).split("\n");
    assert.equal(lines.length, 4);
    assert.equal(lines[1], '  {"box": [0.1, 0.1, 0.2, 0.2]},');
    assert.equal(serializePlacements({ people: [], extra: {} }), '{"version": 1, "units": "fraction", "people": []}');
});

test("bare box lists: fractions when all values are in [0, 1], pixels otherwise", () => {
    const frac = parsePlacements("[[0.1, 0.2, 0.3, 0.4]]", 1000, 800);
    assert.deepEqual(frac.people, [{ box: [0.1, 0.2, 0.3, 0.4] }]);
    const px = parsePlacements("[[100, 200, 300, 400], [0, 0, 0.5, 0.5]]", 1000, 800);
    assert.deepEqual(px.people[0].box, [0.1, 0.25, 0.3, 0.5]);
    assert.deepEqual(px.people[1].box, [0, 0, 0.5 / 1000, 0.5 / 800]);
});

test("px units are converted to fractions of width and height", () => {
    const doc = parsePlacements(
        { version: 1, units: "px", people: [{ box: [256, 192, 512, 576] }, { landmarks: [[512, 384], [600, 384], [556, 420], [520, 460], [590, 460]] }] },
        1024,
        768,
    );
    assert.deepEqual(doc.people[0].box, [0.25, 0.25, 0.5, 0.75]);
    assert.deepEqual(doc.people[1].landmarks[0], [0.5, 0.5]);
    assert.equal(JSON.parse(serializePlacements(doc)).units, "fraction");
    assert.throws(() => parsePlacements({ units: "px", people: [] }, 0, 10), /positive output width/);
});

test("empty text is an empty layout", () => {
    assert.deepEqual(parsePlacements("  \n", 10, 10), { people: [], extra: {} });
});

test("bad input raises PlacementsError naming what is wrong", () => {
    const cases = [
        ["{", /not valid JSON/],
        ['{"version": 2, "people": []}', /version 2 is not supported/],
        ['{"units": "cm", "people": []}', /"units" must be "fraction" or "px"/],
        ['{"boxes": []}', /must be \{"people"/],
        ['{"people": [{"box": [0, 0, 1, 1]}, {"size": 3}]}', /person 2: needs a 'box'/],
        ['{"people": [{"box": [0.5, 0, 0.4, 1]}]}', /person 1 box .* is empty/],
        ['{"people": [{"box": [0, 0, 1]}]}', /person 1 box must be 4 numbers/],
        ['{"people": [{"landmarks": [[0, 0]]}]}', /person 1 landmarks must be 5/],
        ['{"people": [3]}', /person 1: expected an object/],
        ["[[0, 0, 1, 1], [1, 1]]", /box 2 must be 4 numbers/],
    ];
    for (const [text, pattern] of cases) {
        assert.throws(() => parsePlacements(text, 64, 64), (err) => err instanceof PlacementsError && pattern.test(err.message), text);
    }
    assert.throws(() => parsePlacements({ people: [{ box: [0, 0, Infinity, 1] }] }, 1, 1), /NaN or infinite/);
});

test("fitRect keeps the output aspect ratio, fits and centres", () => {
    const r = fitRect(400, 300, 1920, 1080, 10);
    close(r.w / r.h, 1920 / 1080);
    close(r.w, 380);
    close(r.x, 10);
    close(r.y, 10 + (280 - r.h) / 2);
    const tall = fitRect(400, 300, 512, 1024, 0);
    close(tall.h, 300);
    close(tall.w, 150);
    close(tall.x, 125);
    assert.deepEqual(fitRect(400, 300, 0, 100, 5), { x: 5, y: 5, w: 0, h: 0 });
});

test("toCanvas and toFraction are inverse", () => {
    const r = { x: 12, y: 30, w: 200, h: 100 };
    const [x, y] = toCanvas(r, 0.25, 0.8);
    assert.deepEqual([x, y], [62, 110]);
    closeAll(toFraction(r, x, y), [0.25, 0.8]);
    assert.deepEqual(boxToCanvas(r, [0, 0, 1, 1]), { x1: 12, y1: 30, x2: 212, y2: 130 });
});

test("hitTest finds corners, the delete button, the inside; the top box wins", () => {
    const r = { x: 0, y: 0, w: 400, h: 400 };
    const people = [{ box: [0.1, 0.1, 0.5, 0.5] }, { box: [0.4, 0.4, 0.8, 0.8] }];
    assert.deepEqual(hitTest(people, r, 41, 39), { index: 0, part: "nw" });
    assert.deepEqual(hitTest(people, r, 320, 320), { index: 1, part: "se" });
    assert.deepEqual(hitTest(people, r, 165, 165), { index: 1, part: "nw" });
    assert.deepEqual(hitTest(people, r, 180, 180), { index: 1, part: "move" });
    assert.deepEqual(hitTest(people, r, 100, 100), { index: 0, part: "move" });
    const del = deleteButtonRect(boxToCanvas(r, people[0].box));
    assert.deepEqual(hitTest(people, r, del.x + del.w / 2, del.y + del.h / 2), { index: 0, part: "delete" });
    assert.equal(hitTest(people, r, 380, 20), null);
    assert.equal(deleteButtonRect({ x1: 0, y1: 0, x2: 20, y2: 20 }), null);
    const lm = [{ landmarks: [[0.1, 0.1], [0.2, 0.1], [0.15, 0.15], [0.11, 0.2], [0.19, 0.2]] }];
    assert.deepEqual(hitTest(lm, r, 40, 40), { index: 0, part: "move" }); // no resize handles on landmarks
});

test("moving stops at the image border and keeps the size", () => {
    assert.deepEqual(moveBox([0.1, 0.2, 0.3, 0.5], 0.05, -0.1), [0.15, 0.1, 0.35, 0.4]);
    assert.deepEqual(moveBox([0.1, 0.2, 0.3, 0.5], 0.9, -0.9), [0.8, 0, 1, 0.3]);
    const lm = { landmarks: [[0.1, 0.1], [0.2, 0.1], [0.15, 0.15], [0.11, 0.2], [0.19, 0.2]], name: "x" };
    const moved = movePerson(lm, -0.5, 0.1);
    assert.deepEqual(moved.landmarks[0], [0, 0.2]);
    assert.equal(moved.name, "x");
});

test("drawing a box from an anchor, in any direction, clamped to the image", () => {
    assert.deepEqual(boxFromAnchor(0.2, 0.3, 0.5, 0.7), [0.2, 0.3, 0.5, 0.7]);
    assert.deepEqual(boxFromAnchor(0.5, 0.7, 0.2, 0.3), [0.2, 0.3, 0.5, 0.7]);
    assert.deepEqual(boxFromAnchor(0.8, 0.8, 1.4, 1.2), [0.8, 0.8, 1, 1]);
    const tiny = boxFromAnchor(0.5, 0.5, 0.5001, 0.5001, { aspect: 2, minSize: 0.1 });
    closeAll(tiny, [0.5, 0.5, 0.55, 0.6]); // 0.1 of height tall, 0.1 * height of pixels wide
});

test("drawing with a ratio gives that pixel shape for any output aspect", () => {
    const aspect = 1920 / 1080;
    const b = boxFromAnchor(0.1, 0.1, 0.3, 0.2, { aspect, ratio: FACE_BOX_RATIO, minSize: 0 });
    close(((b[2] - b[0]) * 1920) / ((b[3] - b[1]) * 1080), FACE_BOX_RATIO, 1e-4);
    assert.ok(b[2] >= 0.3 - 1e-6 || b[3] >= 0.2 - 1e-6, "covers the dragged point in one direction");
    const edge = boxFromAnchor(0.9, 0.5, 1.5, 0.9, { aspect, ratio: 1, minSize: 0 });
    close(edge[2], 1);
    close(((edge[2] - edge[0]) * 1920) / ((edge[3] - edge[1]) * 1080), 1, 1e-4);
});

test("resizing keeps the opposite corner; Shift keeps the pixel proportions", () => {
    const box = [0.2, 0.2, 0.4, 0.6];
    assert.deepEqual(resizeBox(box, "se", 0.5, 0.7), [0.2, 0.2, 0.5, 0.7]);
    assert.deepEqual(resizeBox(box, "nw", 0.1, 0.1), [0.1, 0.1, 0.4, 0.6]);
    assert.deepEqual(resizeBox(box, "ne", 0.45, 0.15), [0.2, 0.15, 0.45, 0.6]);
    assert.deepEqual(resizeBox(box, "sw", 0.5, 0.3), [0.4, 0.2, 0.5, 0.3]); // dragged past the anchor
    const aspect = 4 / 3;
    const r0 = (0.2 * aspect) / 0.4;
    const kept = resizeBox(box, "se", 0.7, 0.65, { aspect, keepRatio: true, minSize: 0 });
    assert.deepEqual(kept.slice(0, 2), [0.2, 0.2]);
    close(((kept[2] - kept[0]) * aspect) / (kept[3] - kept[1]), r0, 1e-4);
});

test("people list operations and colours", () => {
    const a = { box: [0, 0, 0.1, 0.1] };
    const b = { box: [0.2, 0, 0.3, 0.1] };
    const c = { box: [0.4, 0, 0.5, 0.1] };
    assert.deepEqual(addPerson([a], b), [a, b]);
    assert.deepEqual(removePerson([a, b, c], 1), [a, c]);
    assert.deepEqual(reorderPerson([a, b, c], 2, 0), [c, a, b]);
    assert.deepEqual(reorderPerson([a, b, c], 0, 9), [b, c, a]);
    assert.deepEqual(normalizeBox([0.5, 1.2, -0.1, 0.3]), [0, 0.3, 0.5, 1]);
    assert.equal(new Set(PALETTE).size, PALETTE.length);
    assert.equal(personColor(0), PALETTE[0]);
    assert.equal(personColor(PALETTE.length + 2), PALETTE[2]);
});
