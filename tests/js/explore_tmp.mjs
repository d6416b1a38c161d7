import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const url = process.argv[2];
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ARGS });
const page = await browser.newPage({ viewport: { width: 1600, height: 900 }, deviceScaleFactor: 1 });
page.on("console", (m) => console.log("CONSOLE", m.type(), m.text().slice(0, 300)));
page.on("pageerror", (e) => console.log("PAGEERROR", e.message));
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
await page.screenshot({ path: "/tmp/rf/shot1.png" });
await browser.close();
