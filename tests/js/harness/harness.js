// Mock ComfyUI node host for the rendering test. Mirrors what the frontend does for a node:
// input widgets exist before onNodeCreated, widget values are serialized into widgets_values
// (widgets with serialize === false are skipped) and restored before onConfigure, and
// onExecuted(output) receives the node's UI message.
import { app } from "/scripts/app.js";
import "/extensions/anyphoto/anyphoto_location_editor.js";

const NODE_TYPE = "AnyPhotoBuildLocationCanvas";

/** A node card in the page: title, width/height inputs, a placements textarea, DOM widgets. */
class MockNode {
    constructor({ dom = true, width = 1024, height = 768, placements = "" } = {}) {
        this.size = [480, 200];
        this.properties = {};
        this.graph = { changes: 0, change() { this.changes += 1; } };
        this.card = document.createElement("div");
        this.card.className = "node";
        this.card.innerHTML = `<div class="title">${NODE_TYPE} (${dom ? "DOM widget" : "LiteGraph widget"})</div>`;
        document.body.appendChild(this.card);
        this.widgets = [
            { name: "width", type: "number", value: width },
            { name: "height", type: "number", value: height },
            this._textWidget("placements", placements),
        ];
        if (!dom) this.addDOMWidget = undefined; // an old frontend
    }

    _textWidget(name, value) {
        const el = document.createElement("textarea");
        el.name = name;
        el.value = value;
        this.card.appendChild(el);
        return {
            name,
            type: "customtext",
            inputEl: el,
            get value() {
                return el.value;
            },
            set value(v) {
                el.value = v;
            },
        };
    }

    addDOMWidget(name, type, element, options) {
        const holder = document.createElement("div");
        holder.className = "dom-widget";
        holder.appendChild(element);
        this.card.appendChild(holder);
        const widget = {
            name,
            type,
            element,
            options,
            get value() {
                return options.getValue?.();
            },
            set value(v) {
                options.setValue?.(v);
            },
        };
        this.widgets.push(widget);
        return widget;
    }

    addCustomWidget(widget) {
        this.widgets.push(widget);
        return widget;
    }

    computeSize() {
        return [400, 420];
    }

    setSize(size) {
        this.size = size;
    }

    setDirtyCanvas() {
        this.dirty = (this.dirty || 0) + 1;
    }

    /** What LiteGraph writes into a saved workflow. */
    widgetsValues() {
        return this.widgets.filter((w) => w.serialize !== false).map((w) => w.value);
    }

    /** What LiteGraph does when a workflow is loaded. */
    configure(values) {
        this.widgets.filter((w) => w.serialize !== false).forEach((w, i) => {
            w.value = values[i];
        });
        this.onConfigure?.({ widgets_values: values });
    }

    widget(name) {
        return this.widgets.find((w) => w.name === name);
    }

    /** A user edit of a number widget: LiteGraph sets the value then calls the callback. */
    setNumber(name, value) {
        const w = this.widget(name);
        w.value = value;
        w.callback?.(value);
    }
}

for (const ext of app.extensions) {
    ext.beforeRegisterNodeDef?.(MockNode, { name: NODE_TYPE }, app);
    ext.beforeRegisterNodeDef?.(class Other {}, { name: "SomethingElse" }, app);
}

/** Create a node the way the frontend does (constructor, then onNodeCreated). */
function createNode(opts) {
    const node = new MockNode(opts);
    node.onNodeCreated?.();
    return node;
}

/** LiteGraph host: draw the custom widget onto a plain canvas, as the graph canvas would. */
function drawLiteGraphNode(node) {
    let canvas = node.card.querySelector("canvas.litegraph");
    if (!canvas) {
        canvas = document.createElement("canvas");
        canvas.className = "litegraph";
        canvas.width = 480;
        canvas.height = 320;
        node.card.appendChild(canvas);
    }
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    const w = node.widget("location_editor");
    w.draw(ctx, node, canvas.width, 10, 20);
    return canvas;
}

window.harness = { app, createNode, drawLiteGraphNode, ready: true };
