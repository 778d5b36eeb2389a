// Swagger UI over the gateway's own description. A file, not an inline script, so the
// page's CSP allows scripts from the gateway only; no online validator (a third party).
"use strict";
window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#ui", deepLinking: true, validatorUrl: null });
