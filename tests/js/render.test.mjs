// Rendering test of web/anyphoto_location_editor.js in headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core). A mock ComfyUI node host (harness/) runs the real extension; the test
// draws, moves, resizes and deletes boxes with the mouse, checks the placements JSON, edits the JSON,
// reloads a node from saved widget values, checks what is drawn by pixel probes and saves
// screenshots (ANYPHOTO_SCREENSHOT_DIR, default <tmp>/anyphoto-web-tests).
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";

import { chromium } from "playwright-core";

import { PALETTE } from "../../web/anyphoto_placements.js";
import { startStaticServer } from "./static_server.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const OUT_DIR = process.env.ANYPHOTO_SCREENSHOT_DIR || path.join(os.tmpdir(), "anyphoto-web-tests");
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"];
// Layout constants of the widget (STYLE in the extension): image margin and status line height.
const MARGIN = 8;
const STATUS = 18;
const IMAGE_BG = [0x4a, 0x4a, 0x4a];
const FILL_ALPHA = 0.35;
// Face thumbnails served for /view: person -> [background, skin].
const FACES = { "face_0.png": ["#2a6f97", "#f2c29b"], "face_1.png": ["#6a994e", "#8d5524"] };

let server;
let browser;
let page;

const hex = (h) => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16));
const blend = (color, alpha, bg = IMAGE_BG) => hex(color).map((c, i) => Math.round(bg[i] * (1 - alpha) + c * alpha));

/** The image rect of an output size in a widget area (independent of the extension's code). */
function imageRect(areaW, areaH, outW, outH) {
    const aw = areaW - 2 * MARGIN;
    const ah = areaH - STATUS - 2 * MARGIN;
    const s = Math.min(aw / outW, ah / outH);
    return { x: MARGIN + (aw - outW * s) / 2, y: MARGIN + (ah - outH * s) / 2, w: outW * s, h: outH * s };
}

async function frames() {
    await page.evaluate(() => new Promise((ok) => requestAnimationFrame(() => requestAnimationFrame(ok))));
}

/** Page geometry of node `id`'s editor canvas: its bounding box and image rect. */
async function geometry(id) {
    const g = await page.evaluate((i) => {
        const node = window.nodes[i];
        const c = node.card.querySelector(".anyphoto-location-editor canvas");
        const b = c.getBoundingClientRect();
        return { left: b.left, top: b.top, w: c.clientWidth, h: c.clientHeight,
            outW: node.widget("width").value, outH: node.widget("height").value };
    }, id);
    return { ...g, rect: imageRect(g.w, g.h, g.outW, g.outH) };
}

/** Page point of fraction point (fx, fy) of node `id`'s image. */
async function at(id, fx, fy) {
    const g = await geometry(id);
    return [g.left + g.rect.x + fx * g.rect.w, g.top + g.rect.y + fy * g.rect.h];
}

async function drag(id, from, to, { button = "left" } = {}) {
    const [x0, y0] = await at(id, ...from);
    const [x1, y1] = await at(id, ...to);
    await page.mouse.move(x0, y0);
    await page.mouse.down({ button });
    await page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, { steps: 3 });
    await page.mouse.move(x1, y1, { steps: 3 });
    await page.mouse.up({ button });
    await frames();
}

/** RGB of node `id`'s editor canvas at fraction point (fx, fy) of its image. */
async function probe(id, fx, fy) {
    const g = await geometry(id);
    const x = Math.round(g.rect.x + fx * g.rect.w);
    const y = Math.round(g.rect.y + fy * g.rect.h);
    return page.evaluate(([i, px, py]) => {
        const c = window.nodes[i].card.querySelector(".anyphoto-location-editor canvas");
        const d = c.getContext("2d").getImageData(px * devicePixelRatio, py * devicePixelRatio, 1, 1).data;
        return [d[0], d[1], d[2]];
    }, [id, x, y]);
}

function assertColor(actual, expected, what, tol = 10) {
    const ok = actual.every((v, i) => Math.abs(v - expected[i]) <= tol);
    assert.ok(ok, `${what}: got rgb(${actual}), expected about rgb(${expected})`);
}

const placements = (id) => page.evaluate((i) => window.nodes[i].widget("placements").value, id);
const boxes = async (id) => JSON.parse(await placements(id)).people.map((p) => p.box);

function assertBox(actual, expected, tol = 0.006) {
    assert.ok(actual.every((v, i) => Math.abs(v - expected[i]) <= tol), `box ${JSON.stringify(actual)} != ${JSON.stringify(expected)}`);
}

before(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: apt-get install -y chromium (tests/js/run.sh does it as root)`);
    mkdirSync(OUT_DIR, { recursive: true });
    server = await startStaticServer();
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
    page = await browser.newPage({ viewport: { width: 1040, height: 1000 }, deviceScaleFactor: 1 });
    const errors = [];
    page.on("pageerror", (err) => errors.push(err));
    page.errors = errors;
    await page.goto(`${server.url}/harness/index.html`);
    await page.waitForFunction(() => window.harness?.ready);
    await page.evaluate(() => {
        window.nodes = [window.harness.createNode({ width: 1024, height: 768 })];
    });
    await frames();
});

after(async () => {
    await browser?.close();
    await server?.close();
});

test("the extension only touches AnyPhotoBuildLocationCanvas and adds a non-serialized canvas widget", async () => {
    const info = await page.evaluate(() => ({
        names: window.harness.app.extensions.map((e) => e.name),
        widgets: window.nodes[0].widgets.map((w) => w.name),
        values: window.nodes[0].widgetsValues(),
        domOptionsSerialize: window.nodes[0].widget("location_editor").options.serialize,
    }));
    assert.deepEqual(info.names, ["anyphoto.locationEditor"]);
    assert.deepEqual(info.widgets, ["width", "height", "placements", "location_editor"]);
    assert.deepEqual(info.values, [1024, 768, ""]);
    assert.equal(info.domOptionsSerialize, false);
    assertColor(await probe(0, 0.5, 0.5), IMAGE_BG, "empty image");
});

test("drawing, moving, resizing and deleting boxes writes the placements JSON", async () => {
    await drag(0, [0.1, 0.2], [0.3, 0.6]);
    await drag(0, [0.6, 0.3], [0.85, 0.7]);
    let doc = JSON.parse(await placements(0));
    assert.equal(doc.version, 1);
    assert.equal(doc.units, "fraction");
    assert.equal(doc.people.length, 2);
    assertBox(doc.people[0].box, [0.1, 0.2, 0.3, 0.6]);
    assertBox(doc.people[1].box, [0.6, 0.3, 0.85, 0.7]);

    await drag(0, [0.2, 0.4], [0.25, 0.45]); // move person 1
    await drag(0, [0.85, 0.7], [0.9, 0.8]); // resize person 2 by its bottom-right corner
    let b = await boxes(0);
    assertBox(b[0], [0.15, 0.25, 0.35, 0.65]);
    assertBox(b[1], [0.6, 0.3, 0.9, 0.8]);

    await drag(0, [0.42, 0.05], [0.5, 0.2]); // a third box ...
    assert.equal((await boxes(0)).length, 3);
    const [x, y] = await at(0, 0.46, 0.12);
    await page.mouse.click(x, y, { button: "right" }); // ... removed by right-click
    await frames();
    assert.equal((await boxes(0)).length, 2);

    await drag(0, [0.4, 0.75], [0.55, 0.98]); // and one removed with its x button
    const del = await page.evaluate(() => {
        const r = window.nodes[0].anyphotoLocationEditor.rect();
        return { x: r.x, y: r.y, w: r.w, h: r.h };
    });
    const g = await geometry(0);
    // The x sits left of the top-right handle: 6 px handle + 2 px gap + half its 14 px size.
    const bx = g.left + del.x + 0.55 * del.w - 6 - 2 - 7;
    const by = g.top + del.y + 0.75 * del.h + 3 + 7;
    await page.mouse.click(bx, by);
    await frames();
    b = await boxes(0);
    assert.equal(b.length, 2);
    assertBox(b[1], [0.6, 0.3, 0.9, 0.8]);

    // A click without a drag on empty space adds nothing.
    const [cx, cy] = await at(0, 0.5, 0.1);
    await page.mouse.click(cx, cy);
    await frames();
    assert.equal((await boxes(0)).length, 2);

    assertColor(await probe(0, 0.25, 0.45), blend(PALETTE[0], FILL_ALPHA), "person 1 fill");
    assertColor(await probe(0, 0.75, 0.55), blend(PALETTE[1], FILL_ALPHA), "person 2 fill");
    assertColor(await probe(0, 0.5, 0.9), IMAGE_BG, "outside the boxes");
    doc = JSON.parse(await placements(0));
    assert.ok(await page.evaluate(() => window.nodes[0].graph.changes > 0), "graph change was signalled");
});

test("digit keys renumber the selected box", async () => {
    const before = await boxes(0);
    const [x, y] = await at(0, 0.75, 0.55);
    await page.mouse.click(x, y); // select person 2
    await page.keyboard.press("1");
    await frames();
    const b = await boxes(0);
    assert.deepEqual(b, [before[1], before[0]]);
    assertColor(await probe(0, 0.75, 0.55), blend(PALETTE[0], FILL_ALPHA), "renumbered box takes colour 1");
    await page.keyboard.press("2"); // back
    await frames();
    assert.deepEqual(await boxes(0), before);
});

test("editing the JSON text and the output size redraws the canvas", async () => {
    const text = '[[0.05, 0.1, 0.3, 0.5], [0.4, 0.1, 0.6, 0.5], [0.7, 0.5, 0.95, 0.9]]';
    await page.fill(".node textarea", text);
    await frames();
    for (const [i, [fx, fy]] of [[0.17, 0.3], [0.5, 0.3], [0.82, 0.7]].entries()) {
        assertColor(await probe(0, fx, fy), blend(PALETTE[i], FILL_ALPHA), `person ${i + 1} after a text edit`);
    }
    assert.equal(await placements(0), text, "a text edit is not rewritten by the editor");

    await page.evaluate(() => window.nodes[0].setNumber("width", 512));
    await frames();
    const g = await geometry(0);
    assert.ok(Math.abs(g.rect.w / g.rect.h - 512 / 768) < 1e-9);
    assertColor(await probe(0, 0.82, 0.7), blend(PALETTE[2], FILL_ALPHA), "person 3 in the narrower image");
    assertColor(await probe(0, 0.5, 0.75), IMAGE_BG, "no box there");

    await page.fill(".node textarea", '{"people": [{"box": [0.1, 0.1, 0.2]}]}');
    await frames();
    const status = await page.evaluate(() => window.nodes[0].anyphotoLocationEditor.error);
    assert.match(status, /person 1 box must be 4 numbers/);
    await drag(0, [0.5, 0.5], [0.7, 0.7]); // ignored while the text is invalid
    assert.equal(await placements(0), '{"people": [{"box": [0.1, 0.1, 0.2]}]}');
    await page.screenshot({ path: path.join(OUT_DIR, "location_editor_error.png"), clip: { x: 0, y: 0, width: 520, height: 520 } });

    await page.evaluate(() => window.nodes[0].setNumber("width", 1024));
    await page.fill(".node textarea", "");
    await drag(0, [0.12, 0.15], [0.37, 0.65]);
    await drag(0, [0.58, 0.2], [0.83, 0.7]);
    assert.equal((await boxes(0)).length, 2);
});

test("face thumbnails from onExecuted are drawn in their boxes", async () => {
    const pngs = {};
    for (const [name, [bg, skin]] of Object.entries(FACES)) {
        const data = await page.evaluate(([b, s]) => {
            const c = document.createElement("canvas");
            c.width = 112;
            c.height = 112;
            const x = c.getContext("2d");
            x.fillStyle = b;
            x.fillRect(0, 0, 112, 112);
            x.fillStyle = s;
            x.beginPath();
            x.ellipse(56, 60, 36, 46, 0, 0, 2 * Math.PI);
            x.fill();
            x.fillStyle = "#222";
            for (const ex of [42, 70]) {
                x.beginPath();
                x.arc(ex, 50, 4, 0, 2 * Math.PI);
                x.fill();
            }
            x.strokeStyle = "#7a2e2e";
            x.lineWidth = 3;
            x.beginPath();
            x.arc(56, 76, 12, 0.15 * Math.PI, 0.85 * Math.PI);
            x.stroke();
            return c.toDataURL("image/png").split(",")[1];
        }, [bg, skin]);
        pngs[name] = Buffer.from(data, "base64");
    }
    const requested = [];
    await page.route("**/api/view?**", (route) => {
        const url = new URL(route.request().url());
        requested.push(Object.fromEntries(url.searchParams));
        const body = pngs[url.searchParams.get("filename")];
        return body ? route.fulfill({ status: 200, contentType: "image/png", body }) : route.fulfill({ status: 404 });
    });
    await page.evaluate(() => window.nodes[0].onExecuted({
        anyphoto_faces: [
            { filename: "face_0.png", subfolder: "anyphoto", type: "temp" },
            { filename: "face_1.png", subfolder: "anyphoto", type: "temp" },
        ],
    }));
    await page.waitForFunction(() => window.nodes[0].anyphotoLocationEditor.faces.every((f) => f.complete && f.naturalWidth));
    await frames();
    assert.equal(requested.length, 2);
    assert.deepEqual({ ...requested[0], rand: "" }, { filename: "face_0.png", subfolder: "anyphoto", type: "temp", rand: "" });
    assertColor(await probe(0, 0.245, 0.42), hex(FACES["face_0.png"][1]), "face 1 skin in box 1");
    assertColor(await probe(0, 0.705, 0.47), hex(FACES["face_1.png"][1]), "face 2 skin in box 2");
    await page.screenshot({ path: path.join(OUT_DIR, "location_editor.png"), clip: { x: 0, y: 0, width: 520, height: 520 } });
});

test("a saved workflow reloads into the same boxes", async () => {
    const values = await page.evaluate(() => window.nodes[0].widgetsValues());
    assert.equal(values.length, 3);
    await page.evaluate((v) => {
        const node = window.harness.createNode({ width: 64, height: 64 });
        node.configure(v);
        window.nodes.push(node);
    }, values);
    await frames();
    assert.equal(await placements(1), values[2]);
    assertColor(await probe(1, 0.245, 0.42), blend(PALETTE[0], FILL_ALPHA), "reloaded person 1");
    assertColor(await probe(1, 0.705, 0.47), blend(PALETTE[1], FILL_ALPHA), "reloaded person 2");
    assertColor(await probe(1, 0.5, 0.9), IMAGE_BG, "reloaded empty area");
});

test("without addDOMWidget the editor is a LiteGraph widget with the same behaviour", async () => {
    const result = await page.evaluate(() => {
        const node = window.harness.createNode({ dom: false, width: 1024, height: 1024 });
        const w = node.widget("location_editor");
        const canvas = window.harness.drawLiteGraphNode(node);
        const r = node.anyphotoLocationEditor.rect();
        const top = 10; // drawLiteGraphNode draws the widget at y = 10
        const ev = (type, fx, fy, button = 0) => w.mouse({ type, button }, [r.x + fx * r.w, top + r.y + fy * r.h], node);
        ev("pointerdown", 0.2, 0.2);
        ev("pointermove", 0.3, 0.3);
        ev("pointermove", 0.5, 0.6);
        ev("pointerup", 0.5, 0.6);
        window.harness.drawLiteGraphNode(node);
        const d = canvas.getContext("2d").getImageData(Math.round(r.x + 0.35 * r.w), Math.round(top + r.y + 0.4 * r.h), 1, 1).data;
        return { text: node.widget("placements").value, pixel: [d[0], d[1], d[2]], serialize: w.serialize };
    });
    assert.equal(result.serialize, false);
    const doc = JSON.parse(result.text);
    assertBox(doc.people[0].box, [0.2, 0.2, 0.5, 0.6]);
    assertColor(result.pixel, blend(PALETTE[0], FILL_ALPHA), "LiteGraph-drawn person 1");
    assert.deepEqual(page.errors, [], "no page errors");
    await page.screenshot({ path: path.join(OUT_DIR, "location_editor_page.png"), fullPage: true });
    console.log(`screenshots in ${OUT_DIR}`);
});
