"""The gateway's routers, one module per resource, each a module-level `router` that
`gateway.app.create_app` includes. They reach shared state through `gateway.deps`."""
