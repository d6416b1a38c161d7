/**
 * AnyPhoto location editor: a canvas widget on AnyPhotoBuildLocationCanvas nodes.
 *
 * Shows the output image (aspect ratio from the node's width/height widgets) with one numbered,
 * coloured box per person and, after a run, that person's face thumbnail in the box. Mouse:
 * drag on empty space draws a box, drag a box moves it, drag a corner resizes it (Shift keeps the
 * proportions), right-click or the small x deletes it, digit keys 1-9 renumber the selected box,
 * Delete/Backspace removes it. Every edit writes placements JSON (anyphoto_placements.js) into
 * the node's `placements` widget, so it is saved with UI and API workflows; editing that text
 * updates the canvas. See docs/location_editor.md.
 *
 * Frontend differences are absorbed here: a DOM widget (node.addDOMWidget) when the frontend has
 * it, else a LiteGraph custom widget drawn on the graph canvas. Every optional API is guarded and
 * no exception escapes into graph loading.
 */
import { app } from "../../scripts/app.js";
import {
    CORNERS,
    FACE_BOX_RATIO,
    addPerson,
    boxFromAnchor,
    boxToCanvas,
    cornerPoint,
    deleteButtonRect,
    emptyDocument,
    fitRect,
    hitTest,
    movePerson,
    parsePlacements,
    personBounds,
    personColor,
    removePerson,
    reorderPerson,
    resizeBox,
    serializePlacements,
    toFraction,
} from "./anyphoto_placements.js";

export const NODE_TYPE = "AnyPhotoBuildLocationCanvas";
export const EDITOR_WIDGET_NAME = "location_editor";

/** Drawing style (canvas pixels and colours); exported for the rendering test. */
export const STYLE = Object.freeze({
    background: "#1e1e1e", // widget area
    image: "#4a4a4a", // the output image
    grid: "rgba(255,255,255,0.12)", // rule-of-thirds lines
    fillAlpha: 0.35, // box fill without a thumbnail
    margin: 8, // around the image
    statusHeight: 18, // status line under the image
    handle: 6, // half-size of a corner handle
    deleteSize: 14,
    dragThreshold: 4, // pointer travel before a press on empty space draws a box
    minBoxPx: 8, // smallest box side, output pixels
    height: 300, // default widget height
});

const DEFAULT_SIZE = 1024;

function widgetByName(node, name) {
    return (node.widgets || []).find((w) => w && w.name === name);
}

function positiveNumber(v, fallback) {
    const n = Number(v);
    return Number.isFinite(n) && n > 0 ? n : fallback;
}

/** Chain `fn` after `obj[key]` (a method or callback), keeping what the original returns. */
function chain(obj, key, fn) {
    const orig = obj[key];
    obj[key] = function (...args) {
        const r = typeof orig === "function" ? orig.apply(this, args) : undefined;
        try {
            fn.apply(this, args);
        } catch (err) {
            console.warn(`[AnyPhoto] location editor: ${key} failed`, err);
        }
        return r;
    };
}

function faceUrl(face, stamp) {
    const params = new URLSearchParams({
        filename: String(face.filename ?? ""),
        subfolder: String(face.subfolder ?? ""),
        type: String(face.type ?? "temp"),
        rand: String(stamp),
    });
    const route = `/view?${params}`;
    try {
        if (app?.api && typeof app.api.apiURL === "function") return app.api.apiURL(route);
    } catch {
        /* fall through to the plain route */
    }
    return route;
}

/** Editor state and behaviour of one node; hosts (DOM or LiteGraph) feed it pointer events in
 * widget-area pixels and ask it to render into a 2D context. */
export class LocationEditor {
    constructor(node) {
        this.node = node;
        this.doc = emptyDocument();
        this.error = null; // message while the placements text cannot be read
        this.text = null; // placements text last parsed or written
        this.outW = DEFAULT_SIZE;
        this.outH = DEFAULT_SIZE;
        this.faces = []; // HTMLImageElement per person (or null), from the last run
        this.selected = -1;
        this.hover = null;
        this.drag = null;
        this.area = { w: 0, h: 0 };
        this.onChange = () => {}; // set by the host: request a redraw
    }

    get placementsWidget() {
        return widgetByName(this.node, "placements");
    }

    /** The image rect inside the widget area (canvas pixels). */
    rect() {
        const { margin, statusHeight } = STYLE;
        return fitRect(this.area.w, Math.max(0, this.area.h - statusHeight), this.outW, this.outH, margin);
    }

    /** Re-read width/height and the placements text; returns whether anything changed. */
    sync() {
        const outW = positiveNumber(widgetByName(this.node, "width")?.value, DEFAULT_SIZE);
        const outH = positiveNumber(widgetByName(this.node, "height")?.value, DEFAULT_SIZE);
        let changed = outW !== this.outW || outH !== this.outH;
        this.outW = outW;
        this.outH = outH;
        const w = this.placementsWidget;
        const text = typeof w?.value === "string" ? w.value : "";
        if (text !== this.text || changed) {
            changed = true;
            this.text = text;
            try {
                this.doc = parsePlacements(text, outW, outH);
                this.error = null;
            } catch (err) {
                this.error = err?.message || String(err);
            }
            if (this.selected >= this.doc.people.length) this.selected = -1;
        }
        return changed;
    }

    /** Write the document into the placements widget (and its text box). */
    commit(doc) {
        this.doc = doc;
        const text = serializePlacements(doc);
        this.text = text;
        const w = this.placementsWidget;
        if (w) {
            try {
                w.value = text;
                const el = w.inputEl || w.element;
                if (el && "value" in el && el.value !== text) el.value = text;
                if (typeof w.callback === "function") w.callback(text);
            } catch (err) {
                console.warn("[AnyPhoto] location editor: could not write placements", err);
            }
        }
        try {
            this.node.graph?.change?.();
            this.node.setDirtyCanvas?.(true, true);
        } catch {
            /* a frontend without these hooks still saves the widget value */
        }
        this.onChange();
    }

    /** Face thumbnails of the last run: `[{filename, subfolder, type}]`, person order. */
    setFaces(faces) {
        const stamp = Date.now();
        this.faces = (Array.isArray(faces) ? faces : []).map((face) => {
            if (!face || typeof face !== "object" || typeof Image === "undefined") return null;
            const img = new Image();
            img.onload = () => this.onChange();
            img.src = faceUrl(face, stamp);
            return img;
        });
        this.onChange();
    }

    // ---- pointer and keys (widget-area pixels) ------------------------------------------------

    _opts() {
        return { aspect: this.outW / this.outH, minSize: STYLE.minBoxPx / this.outH };
    }

    pointerDown(x, y, { button = 0, shift = false } = {}) {
        this.sync();
        if (this.error) return false;
        const rect = this.rect();
        const hit = hitTest(this.doc.people, rect, x, y, { handle: STYLE.handle, deleteSize: STYLE.deleteSize });
        if (button === 2) {
            if (hit) this._delete(hit.index);
            return Boolean(hit);
        }
        if (button !== 0) return false;
        if (hit?.part === "delete") {
            this._delete(hit.index);
            return true;
        }
        const [fx, fy] = toFraction(rect, x, y);
        if (hit) {
            this.selected = hit.index;
            this.drag = { kind: hit.part, index: hit.index, start: [fx, fy], person: this.doc.people[hit.index], shift };
            this.onChange();
            return true;
        }
        if (fx >= 0 && fx <= 1 && fy >= 0 && fy <= 1) {
            this.selected = -1;
            this.drag = { kind: "draw", start: [fx, fy], startPx: [x, y], drawn: false, shift };
            this.onChange();
            return true;
        }
        return false;
    }

    pointerMove(x, y, { shift = false } = {}) {
        const rect = this.rect();
        const d = this.drag;
        if (!d) {
            const hit = this.error ? null : hitTest(this.doc.people, rect, x, y, { handle: STYLE.handle });
            const key = hit ? `${hit.index}:${hit.part}` : null;
            if (key !== (this.hover ? `${this.hover.index}:${this.hover.part}` : null)) {
                this.hover = hit;
                this.onChange();
            }
            return false;
        }
        const [fx, fy] = toFraction(rect, x, y);
        let people = this.doc.people.slice();
        if (d.kind === "move") {
            people[d.index] = movePerson(d.person, fx - d.start[0], fy - d.start[1]);
        } else if (CORNERS.includes(d.kind)) {
            const box = resizeBox(d.person.box, d.kind, fx, fy, { ...this._opts(), keepRatio: shift || d.shift });
            people[d.index] = { ...d.person, box };
        } else if (d.kind === "draw") {
            const moved = Math.hypot(x - d.startPx[0], y - d.startPx[1]) >= STYLE.dragThreshold;
            if (!d.drawn && !moved) return true;
            const ratio = shift || d.shift ? FACE_BOX_RATIO : null;
            const box = boxFromAnchor(d.start[0], d.start[1], fx, fy, { ...this._opts(), ratio });
            if (!d.drawn) {
                d.drawn = true;
                d.index = people.length;
                people = addPerson(people, { box });
            } else {
                people[d.index] = { ...people[d.index], box };
            }
            this.selected = d.index;
        }
        this.doc = { ...this.doc, people };
        this.onChange();
        return true;
    }

    pointerUp() {
        const d = this.drag;
        this.drag = null;
        if (!d) return false;
        const changed = d.kind === "draw" ? d.drawn : this.doc.people[d.index] !== d.person;
        if (changed) this.commit(this.doc);
        else this.onChange();
        return true;
    }

    /** Keys on the selected box: 1-9 renumber it, Delete/Backspace remove it. */
    keyDown(key) {
        if (this.error || this.selected < 0 || this.selected >= this.doc.people.length) return false;
        if (key === "Delete" || key === "Backspace") {
            this._delete(this.selected);
            return true;
        }
        if (/^[1-9]$/.test(key)) {
            const to = Math.min(Number(key), this.doc.people.length) - 1;
            this.commit({ ...this.doc, people: reorderPerson(this.doc.people, this.selected, to) });
            this.selected = to;
            this.onChange();
            return true;
        }
        return false;
    }

    _delete(index) {
        this.drag = null;
        this.hover = null;
        this.selected = -1;
        this.commit({ ...this.doc, people: removePerson(this.doc.people, index) });
    }

    // ---- drawing -------------------------------------------------------------------------------

    /** Draw the whole widget into `ctx`, whose origin is the widget area's top-left. */
    render(ctx) {
        const { w, h } = this.area;
        ctx.save();
        ctx.fillStyle = STYLE.background;
        ctx.fillRect(0, 0, w, h);
        const r = this.rect();
        if (r.w > 0 && r.h > 0) {
            ctx.fillStyle = STYLE.image;
            ctx.fillRect(r.x, r.y, r.w, r.h);
            ctx.strokeStyle = STYLE.grid;
            ctx.lineWidth = 1;
            ctx.beginPath();
            for (const t of [1 / 3, 2 / 3]) {
                ctx.moveTo(r.x + t * r.w, r.y);
                ctx.lineTo(r.x + t * r.w, r.y + r.h);
                ctx.moveTo(r.x, r.y + t * r.h);
                ctx.lineTo(r.x + r.w, r.y + t * r.h);
            }
            ctx.stroke();
            ctx.save();
            ctx.beginPath();
            ctx.rect(r.x, r.y, r.w, r.h);
            ctx.clip();
            this.doc.people.forEach((person, i) => this._drawPerson(ctx, r, person, i));
            ctx.restore();
        }
        this._drawStatus(ctx, w, h);
        ctx.restore();
    }

    _drawPerson(ctx, r, person, i) {
        const color = personColor(i);
        const px = boxToCanvas(r, personBounds(person));
        const bw = px.x2 - px.x1;
        const bh = px.y2 - px.y1;
        const img = this.faces[i];
        if (img && img.complete && img.naturalWidth > 0) {
            // "cover": fill the box, keep the thumbnail's proportions, crop the overflow.
            const s = Math.max(bw / img.naturalWidth, bh / img.naturalHeight);
            const dw = img.naturalWidth * s;
            const dh = img.naturalHeight * s;
            ctx.save();
            ctx.beginPath();
            ctx.rect(px.x1, px.y1, bw, bh);
            ctx.clip();
            ctx.drawImage(img, px.x1 + (bw - dw) / 2, px.y1 + (bh - dh) / 2, dw, dh);
            ctx.restore();
        } else {
            ctx.globalAlpha = STYLE.fillAlpha;
            ctx.fillStyle = color;
            ctx.fillRect(px.x1, px.y1, bw, bh);
            ctx.globalAlpha = 1;
        }
        const selected = i === this.selected;
        ctx.strokeStyle = color;
        ctx.lineWidth = selected ? 3 : 2;
        ctx.setLineDash(person.box ? [] : [5, 3]);
        ctx.strokeRect(px.x1, px.y1, bw, bh);
        ctx.setLineDash([]);
        if (person.landmarks) {
            ctx.fillStyle = color;
            for (const [lx, ly] of person.landmarks) {
                ctx.beginPath();
                ctx.arc(r.x + lx * r.w, r.y + ly * r.h, 3, 0, 2 * Math.PI);
                ctx.fill();
            }
        }
        this._drawBadge(ctx, px, color, String(i + 1));
        if (person.box) {
            const hs = STYLE.handle;
            for (const corner of CORNERS) {
                const [cx, cy] = cornerPoint(px, corner);
                ctx.fillStyle = color;
                ctx.fillRect(cx - hs / 2 - 1, cy - hs / 2 - 1, hs + 2, hs + 2);
                ctx.strokeStyle = "#ffffff";
                ctx.lineWidth = 1;
                ctx.strokeRect(cx - hs / 2 - 1, cy - hs / 2 - 1, hs + 2, hs + 2);
            }
        }
        const del = deleteButtonRect(px, STYLE.deleteSize, STYLE.handle);
        if (del) {
            const hot = this.hover && this.hover.index === i && this.hover.part === "delete";
            ctx.fillStyle = hot ? "#d32f2f" : "rgba(0,0,0,0.6)";
            ctx.beginPath();
            ctx.arc(del.x + del.w / 2, del.y + del.h / 2, del.w / 2, 0, 2 * Math.PI);
            ctx.fill();
            ctx.strokeStyle = "#ffffff";
            ctx.lineWidth = 1.5;
            const m = del.w * 0.3;
            ctx.beginPath();
            ctx.moveTo(del.x + m, del.y + m);
            ctx.lineTo(del.x + del.w - m, del.y + del.h - m);
            ctx.moveTo(del.x + del.w - m, del.y + m);
            ctx.lineTo(del.x + m, del.y + del.h - m);
            ctx.stroke();
        }
    }

    _drawBadge(ctx, px, color, label) {
        ctx.font = "bold 14px sans-serif";
        ctx.textBaseline = "middle";
        ctx.textAlign = "center";
        const bw = Math.max(20, ctx.measureText(label).width + 8);
        const bh = 20;
        const x = px.x1 + 3;
        const y = px.y1 + 3;
        ctx.fillStyle = color;
        ctx.fillRect(x, y, bw, bh);
        ctx.lineWidth = 3;
        ctx.strokeStyle = "rgba(0,0,0,0.85)";
        ctx.strokeText(label, x + bw / 2, y + bh / 2 + 1);
        ctx.fillStyle = "#ffffff";
        ctx.fillText(label, x + bw / 2, y + bh / 2 + 1);
    }

    _drawStatus(ctx, w, h) {
        const n = this.doc.people.length;
        const faces = this.faces.length;
        let text;
        let color = "#bbbbbb";
        if (this.error) {
            text = `placements JSON: ${this.error}`;
            color = "#ff6b6b";
        } else {
            text = `${this.outW}×${this.outH} · ${n} box${n === 1 ? "" : "es"}`;
            if (faces) {
                text += ` · ${faces} face${faces === 1 ? "" : "s"} in last run`;
                if (faces > n) {
                    text += ` · draw ${faces - n} more`;
                    color = "#ffb74d";
                }
            }
            if (n === 0) text += " · drag on the image to add a box";
        }
        ctx.font = "12px sans-serif";
        ctx.textAlign = "left";
        ctx.textBaseline = "middle";
        ctx.fillStyle = color;
        const y = h - STYLE.statusHeight / 2 - 2;
        let shown = text;
        while (shown.length > 4 && ctx.measureText(shown).width > w - 2 * STYLE.margin) shown = `${shown.slice(0, -2)}…`;
        ctx.fillText(shown, STYLE.margin, y);
    }
}

// ---- hosts --------------------------------------------------------------------------------------

/** DOM host: a <canvas> inside a DOM widget. */
function attachDomHost(node, editor) {
    const container = document.createElement("div");
    container.style.cssText = "width:100%;height:100%;position:relative;overflow:hidden;";
    container.className = "anyphoto-location-editor";
    const canvas = document.createElement("canvas");
    canvas.tabIndex = 0;
    canvas.style.cssText = "width:100%;height:100%;display:block;outline:none;touch-action:none;";
    container.appendChild(canvas);

    let frame = 0;
    const draw = () => {
        frame = 0;
        const cw = Math.max(1, Math.round(canvas.clientWidth));
        const ch = Math.max(1, Math.round(canvas.clientHeight));
        const dpr = (typeof window !== "undefined" && window.devicePixelRatio) || 1;
        if (canvas.width !== Math.round(cw * dpr) || canvas.height !== Math.round(ch * dpr)) {
            canvas.width = Math.round(cw * dpr);
            canvas.height = Math.round(ch * dpr);
        }
        editor.area = { w: cw, h: ch };
        const ctx = canvas.getContext("2d");
        if (!ctx) return;
        ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
        editor.render(ctx);
    };
    const request = () => {
        if (frame) return;
        frame = typeof requestAnimationFrame === "function" ? requestAnimationFrame(draw) : setTimeout(draw, 16);
    };
    editor.onChange = request;

    const local = (e) => {
        const b = canvas.getBoundingClientRect();
        // The graph may be zoomed with CSS transforms: map client pixels to canvas CSS pixels.
        const sx = b.width ? canvas.clientWidth / b.width : 1;
        const sy = b.height ? canvas.clientHeight / b.height : 1;
        return [(e.clientX - b.left) * sx, (e.clientY - b.top) * sy];
    };
    const stop = (e) => {
        e.preventDefault();
        e.stopPropagation();
    };
    canvas.addEventListener("pointerdown", (e) => {
        const [x, y] = local(e);
        canvas.focus?.({ preventScroll: true });
        if (editor.pointerDown(x, y, { button: e.button, shift: e.shiftKey })) {
            stop(e);
            if (editor.drag) canvas.setPointerCapture?.(e.pointerId);
        }
    });
    canvas.addEventListener("pointermove", (e) => {
        const [x, y] = local(e);
        if (editor.pointerMove(x, y, { shift: e.shiftKey })) stop(e);
        const part = editor.drag?.kind || editor.hover?.part;
        canvas.style.cursor = part === "move" ? "move"
            : part === "nw" || part === "se" ? "nwse-resize"
                : part === "ne" || part === "sw" ? "nesw-resize"
                    : part === "delete" ? "pointer" : "crosshair";
    });
    const up = (e) => {
        if (editor.pointerUp()) stop(e);
        canvas.releasePointerCapture?.(e.pointerId);
    };
    canvas.addEventListener("pointerup", up);
    canvas.addEventListener("pointercancel", up);
    canvas.addEventListener("contextmenu", stop);
    canvas.addEventListener("keydown", (e) => {
        if (editor.keyDown(e.key)) stop(e);
    });
    if (typeof ResizeObserver === "function") new ResizeObserver(request).observe(canvas);

    const widget = node.addDOMWidget(EDITOR_WIDGET_NAME, "anyphoto_location", container, {
        serialize: false,
        hideOnZoom: false,
        getValue: () => "",
        setValue: () => {},
        getMinHeight: () => 160,
        getHeight: () => STYLE.height,
    });
    if (widget) {
        widget.serialize = false; // not in widgets_values (the placements widget holds the data)
        if (!widget.computeSize) widget.computeSize = (width) => [width, STYLE.height];
    }
    request();
    return { widget, element: container, redraw: request };
}

/** LiteGraph host: a custom widget drawn on the graph canvas (frontends without DOM widgets). */
function attachLiteGraphHost(node, editor) {
    let top = 0;
    let width = 0;
    const widget = {
        name: EDITOR_WIDGET_NAME,
        type: "anyphoto_location",
        value: "",
        serialize: false,
        options: { serialize: false },
        computeSize: (w) => [w, STYLE.height],
        draw(ctx, _node, widgetWidth, y) {
            top = y;
            width = widgetWidth;
            editor.sync();
            editor.area = { w: widgetWidth, h: STYLE.height };
            ctx.save();
            ctx.translate(0, y);
            editor.render(ctx);
            ctx.restore();
        },
        mouse(e, pos) {
            const x = pos[0];
            const y = pos[1] - top;
            const t = String(e?.type || "");
            if (x < 0 || x > width) return false;
            if (t.endsWith("down")) return editor.pointerDown(x, y, { button: e.button ?? 0, shift: Boolean(e.shiftKey) });
            if (t.endsWith("move")) return editor.pointerMove(x, y, { shift: Boolean(e.shiftKey) });
            if (t.endsWith("up")) return editor.pointerUp();
            return false;
        },
    };
    editor.onChange = () => node.setDirtyCanvas?.(true, true);
    if (typeof node.addCustomWidget === "function") node.addCustomWidget(widget);
    else (node.widgets ||= []).push(widget);
    return { widget, element: null, redraw: editor.onChange };
}

/** Build the editor on a freshly created node. */
export function attachLocationEditor(node) {
    const editor = new LocationEditor(node);
    const host = typeof node.addDOMWidget === "function" && typeof document !== "undefined"
        ? attachDomHost(node, editor)
        : attachLiteGraphHost(node, editor);
    node.anyphotoLocationEditor = editor;
    const refresh = () => {
        if (editor.sync()) host.redraw();
    };
    // Text typed into the JSON box and width/height edits: their callbacks and input events where
    // the frontend has them, plus a cheap poll for the rest (links, undo, paste, Vue widgets).
    for (const name of ["width", "height", "placements"]) {
        const w = widgetByName(node, name);
        if (w) chain(w, "callback", refresh);
    }
    const textEl = editor.placementsWidget?.inputEl || editor.placementsWidget?.element;
    textEl?.addEventListener?.("input", refresh);
    const timer = setInterval(() => {
        if (host.element && host.element.isConnected === false && !node.graph) return;
        refresh();
    }, 300);
    chain(node, "onRemoved", () => clearInterval(timer));
    editor.sync();
    host.redraw();
    return editor;
}

app.registerExtension({
    name: "anyphoto.locationEditor",
    beforeRegisterNodeDef(nodeType, nodeData) {
        if (nodeData?.name !== NODE_TYPE || !nodeType?.prototype) return;
        chain(nodeType.prototype, "onNodeCreated", function () {
            attachLocationEditor(this);
            const size = typeof this.computeSize === "function" ? this.computeSize() : null;
            if (Array.isArray(size) && Array.isArray(this.size) && typeof this.setSize === "function") {
                this.setSize([Math.max(this.size[0], size[0], 320), Math.max(this.size[1], size[1])]);
            }
        });
        chain(nodeType.prototype, "onExecuted", function (message) {
            const faces = message?.anyphoto_faces;
            if (Array.isArray(faces)) this.anyphotoLocationEditor?.setFaces(faces);
        });
        chain(nodeType.prototype, "onConfigure", function () {
            // Loaded workflow: widget values were just restored.
            const editor = this.anyphotoLocationEditor;
            if (editor && editor.sync()) editor.onChange();
        });
    },
});
