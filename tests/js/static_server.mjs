// Tiny static server for the rendering test, on 127.0.0.1 and an ephemeral port.
//   /scripts/app.js        -> harness/app.js (mock of ComfyUI's app)
//   /extensions/anyphoto/* -> web/* (the extension under test, as ComfyUI serves it)
//   /harness/*             -> harness/*
import { readFile } from "node:fs/promises";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROUTES = [
    ["/scripts/app.js", path.join(HERE, "harness", "app.js")],
    ["/extensions/anyphoto/", path.join(HERE, "..", "..", "web") + path.sep],
    ["/harness/", path.join(HERE, "harness") + path.sep],
];
const TYPES = { ".js": "text/javascript", ".mjs": "text/javascript", ".html": "text/html", ".png": "image/png" };

function resolve(urlPath) {
    for (const [prefix, target] of ROUTES) {
        if (urlPath === prefix) return target;
        if (prefix.endsWith("/") && urlPath.startsWith(prefix)) {
            const file = path.normalize(path.join(target, urlPath.slice(prefix.length)));
            return file.startsWith(target) ? file : null;
        }
    }
    return null;
}

/** Start the server; resolves to {url, close()}. */
export function startStaticServer() {
    const server = http.createServer(async (req, res) => {
        const file = resolve(decodeURIComponent(new URL(req.url, "http://x").pathname));
        try {
            if (!file) throw new Error("no route");
            const body = await readFile(file);
            res.writeHead(200, { "content-type": TYPES[path.extname(file)] || "application/octet-stream" });
            res.end(body);
        } catch {
            res.writeHead(404).end("not found");
        }
    });
    return new Promise((ok) => {
        server.listen(0, "127.0.0.1", () => {
            const { port } = server.address();
            ok({ url: `http://127.0.0.1:${port}`, close: () => new Promise((done) => server.close(done)) });
        });
    });
}
