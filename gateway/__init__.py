"""Gateway: the HTTP front door (API, pages, sign-in, roles) and the composition root/CLI."""
