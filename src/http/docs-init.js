// The /docs page: Swagger UI rendering /openapi.json, with "try it out" on by default.
"use strict";

// "Try it out" must call the server that serves this page. The description's `servers` may name
// another address (say the default http://127.0.0.1:3000); unless one of them resolves to this
// page's origin (a relative `/` does), this origin is put first in the list, the others stay
// selectable.
function ThisOriginFirst() {
  return {
    statePlugins: {
      spec: {
        wrapActions: {
          updateJsonSpec: (original) => (spec) => {
            if (spec && typeof spec === "object" && !Array.isArray(spec)) {
              const servers = Array.isArray(spec.servers) ? spec.servers : [];
              const here = window.location.origin;
              const served = servers.some((server) => {
                try {
                  return new URL(server.url, window.location.href).origin === here;
                } catch (e) {
                  return false;
                }
              });
              if (!served) {
                spec = Object.assign({}, spec, {
                  servers: [{ url: here, description: "this server (the one serving this page)" }]
                    .concat(servers),
                });
              }
            }
            return original(spec);
          },
        },
      },
    },
  };
}

window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  tryItOutEnabled: true,
  displayRequestDuration: true,
  // No badge fetched from the public validator: nothing leaves for another host.
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  plugins: [ThisOriginFirst],
});
