// Drives the REAL ComfyUI web frontend (served by a running ComfyUI with this pack installed) in
// headless Chromium (Debian's /usr/bin/chromium via playwright-core) and prints a JSON report of
// what it saw on stdout; tests/integration/test_real_frontend.py starts the server and asserts on it.
//
//   node real_frontend.mjs SERVER_URL WORKFLOW_JSON [--screenshots DIR]
//
// Steps: turn off first-run UI through the settings API (template browser, minimap, canvas info,
// level-of-detail text hiding), open the app, load the UI workflow, collect console messages and
// page errors, list registered AnyPhoto node types and any dialog shown, drag a new box on the
// AnyPhotoBuildLocationCanvas location editor, reload the graph from app.graph.serialize() and read
// the boxes back, and deliver face thumbnails through the frontend's "executed" event.
// With --screenshots, saves workflow_2_people.png (the whole graph at the workflow's own node positions,
// 1600x900) and location_editor.png (close-up of the location editor node).
import { readFileSync } from "node:fs";
import path from "node:path";

import { chromium } from "playwright-core";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const SETTINGS = {
    "Comfy.TutorialCompleted": true, // no template browser on first start
    "Comfy.Minimap.Visible": false,
    "Comfy.Graph.CanvasInfo": false,
    "Comfy.Graph.CanvasMenu": false,
    "LiteGraph.Canvas.MinFontSizeForLOD": 0, // draw node text at any zoom
};
const NODE_TYPE = "AnyPhotoBuildLocationCanvas";

const [url, workflowPath, ...rest] = process.argv.slice(2);
if (!url || !workflowPath) {
    console.error("usage: node real_frontend.mjs SERVER_URL WORKFLOW_JSON [--screenshots DIR]");
    process.exit(2);
}
const shotDir = rest[0] === "--screenshots" ? rest[1] : null;
const workflow = JSON.parse(readFileSync(workflowPath, "utf8"));

const report = { console: [], pageErrors: [] };
let phase = "start"; // tags console messages with the step they came from
const frames = (page) => page.evaluate(() => new Promise((ok) => requestAnimationFrame(() => requestAnimationFrame(ok))));

/** Page geometry of the location editor: its canvas box and the image rect (page pixels). */
async function editorGeometry(page) {
    return page.evaluate((type) => {
        const node = window.app.graph._nodes.find((n) => n.type === type);
        const canvas = node?.anyphotoLocationEditor && node.widgets.find((w) => w.name === "location_editor")
            ?.element?.querySelector("canvas");
        if (!canvas) return null;
        const b = canvas.getBoundingClientRect();
        const r = node.anyphotoLocationEditor.rect();
        const sx = b.width / canvas.clientWidth;
        const sy = b.height / canvas.clientHeight;
        return { x: b.left + r.x * sx, y: b.top + r.y * sy, w: r.w * sx, h: r.h * sy };
    }, NODE_TYPE);
}

/** State of the location editor node: placements text and the boxes the editor holds. */
function editorState(page) {
    return page.evaluate((type) => {
        const nodes = window.app.graph._nodes.filter((n) => n.type === type);
        const node = nodes[0];
        const editor = node?.anyphotoLocationEditor;
        return {
            count: nodes.length,
            placements: node?.widgets.find((w) => w.name === "placements")?.value ?? null,
            editorBoxes: editor ? editor.doc.people.map((p) => p.box) : null,
            editorError: editor ? editor.error : "no editor",
            widgets: node ? node.widgets.map((w) => w.name) : [],
            size: node ? [node.size[0], node.size[1]] : null,
        };
    }, NODE_TYPE);
}

/** Place the graph so that all nodes fill the viewport (LiteGraph: screen = (pos + offset) * scale). */
async function fitGraph(page, margin) {
    await page.evaluate((m) => {
        const { app } = window;
        let x0 = Infinity; let y0 = Infinity; let x1 = -Infinity; let y1 = -Infinity;
        for (const n of app.graph._nodes) {
            const title = window.LiteGraph.NODE_TITLE_HEIGHT;
            x0 = Math.min(x0, n.pos[0]);
            y0 = Math.min(y0, n.pos[1] - title);
            x1 = Math.max(x1, n.pos[0] + n.size[0]);
            y1 = Math.max(y1, n.pos[1] + n.size[1]);
        }
        const el = app.canvas.canvas;
        const w = el.clientWidth;
        const h = el.clientHeight;
        const scale = Math.min((w - 2 * m) / (x1 - x0), (h - 2 * m) / (y1 - y0));
        app.canvas.ds.scale = scale;
        app.canvas.ds.offset[0] = w / 2 / scale - (x0 + x1) / 2;
        app.canvas.ds.offset[1] = h / 2 / scale - (y0 + y1) / 2;
        app.canvas.setDirty(true, true);
    }, margin);
    await page.waitForTimeout(300);
    await frames(page);
}

async function main() {
    // Settings first, so that the app starts without the first-run template browser.
    const resp = await fetch(`${url}/api/settings`, { method: "POST", body: JSON.stringify(SETTINGS) });
    if (!resp.ok) throw new Error(`POST /api/settings: HTTP ${resp.status}`);

    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
    try {
        const page = await browser.newPage({ viewport: { width: 1600, height: 900 }, deviceScaleFactor: 1 });
        page.on("console", (m) => report.console.push({ phase, type: m.type(), text: m.text(), url: m.location()?.url || "" }));
        page.on("pageerror", (e) => report.pageErrors.push({ phase, error: String(e.stack || e) }));
        await page.goto(url, { timeout: 120000 }); // generous: CI machines may be busy
        await page.waitForFunction(() => window.app?.graph && window.app?.canvas && window.LiteGraph, null, { timeout: 60000 });
        report.frontendVersion = await page.evaluate(() => window.__COMFYUI_FRONTEND_VERSION__ ?? null);
        report.extensions = await page.evaluate(() => window.app.extensions.map((e) => e.name).filter((n) => /anyphoto/i.test(n)));
        report.registered = await page.evaluate(() => Object.keys(window.LiteGraph.registered_node_types).filter((k) => k.startsWith("AnyPhoto")));

        phase = "load";
        await page.evaluate((wf) => window.app.loadGraphData(wf), workflow);
        await page.waitForTimeout(1000);
        await frames(page);
        report.graphNodes = await page.evaluate(() => window.app.graph._nodes.map((n) => ({
            id: n.id, type: n.type, registered: Boolean(window.LiteGraph.registered_node_types[n.type]),
        })));
        report.dialogs = await page.evaluate(() => [...document.querySelectorAll(".p-dialog")].map((d) => d.innerText.slice(0, 500)));
        report.loaded = await editorState(page);

        // Whole-graph screenshot (before any edit, so it shows the workflow as shipped).
        await page.evaluate(() => window.app.extensionManager.command.execute("Workspace.ToggleFocusMode"));
        if (shotDir) {
            await fitGraph(page, 40);
            await page.mouse.move(1, 1);
            await page.waitForTimeout(500);
            await page.screenshot({ path: path.join(shotDir, "workflow_2_people.png") });
        }

        phase = "edit";
        // Zoom onto the location editor node so that the drag is precise, then draw a box.
        await page.evaluate((type) => {
            const { app } = window;
            const node = app.graph._nodes.find((n) => n.type === type);
            const el = app.canvas.canvas;
            const scale = 1.3;
            app.canvas.ds.scale = scale;
            app.canvas.ds.offset[0] = el.clientWidth / 2 / scale - (node.pos[0] + node.size[0] / 2);
            app.canvas.ds.offset[1] = el.clientHeight / 2 / scale - (node.pos[1] + node.size[1] / 2 - 15);
            app.canvas.setDirty(true, true);
        }, NODE_TYPE);
        await page.waitForTimeout(500);
        await frames(page);
        const g = await editorGeometry(page);
        report.editorRect = g;
        if (g) {
            if (shotDir) {
                const box = await page.evaluate((type) => {
                    const { app } = window;
                    const n = app.graph._nodes.find((x) => x.type === type);
                    const { scale: s, offset } = app.canvas.ds;
                    const title = window.LiteGraph.NODE_TITLE_HEIGHT;
                    const b = app.canvas.canvas.getBoundingClientRect();
                    return { x: b.left + (n.pos[0] + offset[0]) * s, y: b.top + (n.pos[1] - title + offset[1]) * s,
                        w: n.size[0] * s, h: (n.size[1] + title) * s };
                }, NODE_TYPE);
                const pad = 16;
                const top = 40; // room for the node's source badge above the title
                await page.screenshot({
                    path: path.join(shotDir, "location_editor.png"),
                    clip: { x: Math.max(0, box.x - pad), y: Math.max(0, box.y - top), width: box.w + 2 * pad, height: box.h + pad + top },
                });
            }
            const from = [0.3, 0.62];
            const to = [0.7, 0.9];
            const p0 = [g.x + from[0] * g.w, g.y + from[1] * g.h];
            const p1 = [g.x + to[0] * g.w, g.y + to[1] * g.h];
            report.drag = { from, to };
            await page.mouse.move(...p0);
            await page.mouse.down();
            await page.mouse.move((p0[0] + p1[0]) / 2, (p0[1] + p1[1]) / 2, { steps: 4 });
            await page.mouse.move(...p1, { steps: 4 });
            await page.mouse.up();
            await frames(page);
        }
        report.afterDraw = await editorState(page);
        report.graphChanged = await page.evaluate(() => window.app.graph.serialize().nodes
            .find((n) => n.type === "AnyPhotoBuildLocationCanvas")?.widgets_values ?? null);

        // Reload the graph from its own serialization: the boxes must come back.
        await page.evaluate(() => window.app.loadGraphData(window.app.graph.serialize()));
        await page.waitForTimeout(800);
        await frames(page);
        report.afterReload = await editorState(page);

        phase = "faces"; // the thumbnails do not exist on the server: their /view requests fail (404)
        // Face thumbnails arrive with the node's "executed" event (ui output anyphoto_faces).
        const viewRequests = [];
        page.on("request", (r) => { if (r.url().includes("/view?")) viewRequests.push(r.url()); });
        report.faces = await page.evaluate(async (type) => {
            const node = window.app.graph._nodes.find((n) => n.type === type);
            const faces = [{ filename: "f0.png", subfolder: "anyphoto", type: "temp" },
                { filename: "f1.png", subfolder: "anyphoto", type: "temp" }];
            window.app.api.dispatchCustomEvent("executed", { node: String(node.id), display_node: String(node.id), output: { anyphoto_faces: faces } });
            await new Promise((ok) => setTimeout(ok, 300));
            // let every thumbnail request settle (these test files 404) before the next phase starts
            const settled = (img) => !img || img.complete ? null : new Promise((ok) => {
                img.addEventListener("load", ok, { once: true });
                img.addEventListener("error", ok, { once: true });
                setTimeout(ok, 10000);
            });
            await Promise.all(node.anyphotoLocationEditor.faces.map(settled));
            return node.anyphotoLocationEditor.faces.map((img) => (img ? new URL(img.src).pathname : null));
        }, NODE_TYPE);
        report.viewRequests = viewRequests.map((u) => new URL(u).pathname + new URL(u).search.replace(/rand=\d+/, "rand=N"));

        phase = "warnings"; // nodes/feedback.py: ui output anyphoto_warnings -> toast + box on the node
        report.warnings = await page.evaluate(async () => {
            const node = window.app.graph._nodes.find((n) => n.type === "AnyPhotoLoadFaceRefs");
            const send = (messages) => window.app.api.dispatchCustomEvent("executed", {
                node: String(node.id), display_node: String(node.id), output: { anyphoto_warnings: messages },
            });
            const wait = () => new Promise((ok) => setTimeout(ok, 500));
            send(["person 1 and person 2 got the same face (test)"]);
            await wait();
            const box = () => document.querySelector(".anyphoto-warnings");
            const shown = { text: box()?.textContent ?? null, visible: box() ? box().style.display !== "none" : false };
            const toasts = [...document.querySelectorAll(".p-toast-message")].map((t) => t.innerText);
            send([]);
            await wait();
            return { shown, toasts, clearedVisible: box() ? box().style.display !== "none" : false,
                serialized: window.app.graph.serialize().nodes.find((n) => n.id === node.id).widgets_values };
        });
    } finally {
        await browser.close();
    }
}

main().then(
    () => process.stdout.write(`${JSON.stringify(report)}\n`),
    (err) => {
        report.fatal = String(err?.stack || err);
        process.stdout.write(`${JSON.stringify(report)}\n`);
        process.exit(1);
    },
);
