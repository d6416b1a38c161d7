/**
 * AnyPhoto warnings in the UI. The pack's nodes return `ui.anyphoto_warnings` (a list of messages,
 * nodes/feedback.py) with their "executed" event: a photo skipped, layout faces dropped, extra boxes,
 * boxes that overlap, identities switched off, two people with the same face. This extension shows them
 * as a toast and in an amber box on the node until the node runs again without warnings, so nothing the
 * user must know stays in the server console. Every frontend API used is guarded.
 */
import { app } from "../../scripts/app.js";

export const UI_KEY = "anyphoto_warnings";
const WIDGET_NAME = "anyphoto_warnings";
const TOAST_LIFE_MS = 20000;

/** The text shown on the node: one line per message. */
export function warningText(messages) {
    return messages.map((m) => `\u26a0 ${String(m)}`).join("\n");
}

function nodeBox(node) {
    if (node.anyphotoWarnings) return node.anyphotoWarnings;
    if (typeof node.addDOMWidget !== "function" || typeof document === "undefined") return null;
    const el = document.createElement("div");
    el.className = "anyphoto-warnings";
    el.style.cssText = "color:#1a1a1a;background:#f5c542;border-radius:4px;padding:4px 6px;"
        + "font:12px sans-serif;white-space:pre-wrap;overflow:auto;max-height:160px";
    const widget = node.addDOMWidget(WIDGET_NAME, "anyphoto_warnings", el, { serialize: false, getMinHeight: () => 48 });
    if (widget) widget.serialize = false; // never in widgets_values
    node.anyphotoWarnings = { el, widget };
    return node.anyphotoWarnings;
}

/** Show `messages` on `node` (an empty list clears the box) and as a toast. */
export function showWarnings(node, messages) {
    const box = messages.length ? nodeBox(node) : node.anyphotoWarnings;
    if (box) {
        box.el.textContent = warningText(messages);
        box.el.style.display = messages.length ? "block" : "none";
    }
    node.anyphotoWarningMessages = [...messages];
    const toast = app.extensionManager?.toast;
    if (messages.length && typeof toast?.add === "function") {
        toast.add({
            severity: "warn",
            summary: `AnyPhoto: ${node.title || node.type}`,
            detail: messages.join("\n"),
            life: TOAST_LIFE_MS,
        });
    }
    node.setDirtyCanvas?.(true, true);
}

app.registerExtension({
    name: "anyphoto.warnings",
    beforeRegisterNodeDef(nodeType, nodeData) {
        if (!String(nodeData?.name ?? "").startsWith("AnyPhoto") || !nodeType?.prototype) return;
        const original = nodeType.prototype.onExecuted;
        nodeType.prototype.onExecuted = function (message) {
            const result = typeof original === "function" ? original.apply(this, arguments) : undefined;
            try {
                const messages = message?.[UI_KEY];
                if (Array.isArray(messages)) showWarnings(this, messages);
            } catch (err) {
                console.warn("[AnyPhoto] showing warnings failed", err);
            }
            return result;
        };
    },
});
