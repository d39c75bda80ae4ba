-- Configuration of the lab-authz plugin: one instance per route (KongPlugin), written by
-- components/gateway.py. Kong validates it when the ingress controller pushes the config.

local typedefs = require("kong.db.schema.typedefs")

return {
  name = "lab-authz",
  fields = {
    { consumer = typedefs.no_consumer },
    { protocols = typedefs.protocols_http },
    { config = {
        type = "record",
        fields = {
          { decision_url = typedefs.url({ required = true }) },
          { timeout_ms = { type = "integer", required = true, default = 300,
                           between = { 10, 5000 } } },
          { audience = { type = "string", required = true } },
          { scopes = { type = "array", required = true, default = {},
                       elements = { type = "string" } } },
          { action = { type = "string", required = true,
                       one_of = { "invoke_chat_model", "generate_image", "call_service",
                                  "read_result" } } },
          { resource_type = { type = "string", required = true,
                              one_of = { "model", "service", "result" } } },
          { resource_id = { type = "string", required = true } },
          { route = { type = "string", required = true } },
          { actor_required = { type = "boolean", required = true, default = false } },
          { agent_prefix = { type = "string", required = false } },
          { max_token_bytes = { type = "integer", required = true, default = 8192,
                                between = { 512, 65536 } } },
        },
    }, },
  },
}
