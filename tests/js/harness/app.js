// Mock of ComfyUI's /scripts/app.js for the rendering test: just enough for registerExtension
// and the /view URL helper. Served at /scripts/app.js by tests/js/static_server.mjs.
export const app = {
    extensions: [],
    api: { apiURL: (route) => `/api${route}` },
    registerExtension(ext) {
        this.extensions.push(ext);
    },
};
