"""SQL of the gateway, one module per resource. Every query that returns objects of homes
takes the caller's `gateway.access.HomeFilter`, so what is outside the caller's part of the
region tree is simply not found."""
