import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const url = process.argv[2];
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ARGS });
const page = await browser.newPage({ viewport: { width: 1600, height: 900 }, deviceScaleFactor: 1 });
page.on("console", (m) => console.log("CONSOLE", m.type(), m.text().slice(0, 300)));
page.on("pageerror", (e) => console.log("PAGEERROR", e.stack));
page.on("response", (r) => { if (r.status() >= 400) console.log("HTTP", r.status(), r.url()); });
page.on("requestfailed", (r) => console.log("REQFAIL", r.url()));
const t0 = Date.now();
await page.goto(url);
await page.waitForFunction(() => window.app?.graph && window.LiteGraph, null, { timeout: 60000 });
console.log("app ready", Date.now() - t0);
await page.waitForTimeout(2000);
const wf = JSON.parse(readFileSync("/work/main/workflows/anyphoto_2_people.json", "utf8"));
await page.evaluate((w) => window.app.loadGraphData(w), wf);
await page.waitForTimeout(2000);
const info = await page.evaluate(() => {
  const n = window.app.graph._nodes.find((x) => x.type === "AnyPhotoBuildLocationCanvas");
  return { size: n.size, pos: n.pos, widgets: n.widgets.map((w) => [w.name, w.type, typeof w.value, w.element?.tagName, w.inputEl?.tagName]),
    hasEditor: !!n.anyphotoLocationEditor, area: n.anyphotoLocationEditor?.area,
    reg: Object.keys(window.LiteGraph.registered_node_types).filter((k) => k.startsWith("AnyPhoto")),
    dialogs: [...document.querySelectorAll(".p-dialog")].map((d) => d.innerText.slice(0, 200)),
    version: window.__COMFYUI_FRONTEND_VERSION__ };
});
console.log(JSON.stringify(info, null, 1));
console.log(JSON.stringify(await page.evaluate(() => window.app.graph._nodes.map((n) => [n.id, n.type, [...n.pos], [...n.size]]))));
await page.evaluate(() => window.app.extensionManager.command.execute("Workspace.ToggleFocusMode"));
await page.waitForTimeout(500);
await page.evaluate(() => { window.app.graph.arrange(30); });
await page.waitForTimeout(300);
console.log(JSON.stringify(await page.evaluate(() => window.app.graph._nodes.map((n) => [n.id, n.type, [...n.pos], [...n.size]]))));
await page.evaluate(() => window.app.extensionManager.command.execute("Comfy.Canvas.FitView"));
await page.waitForTimeout(1000);
await page.screenshot({ path: "/tmp/rf/shot1.png" });
console.log(JSON.stringify(await page.evaluate(() => ({scale: window.app.canvas.ds.scale, offset: window.app.canvas.ds.offset}))));
await browser.close();
