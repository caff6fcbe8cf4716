"""Enrolment and administration (issue #17): regions, homes, elders and their contacts,
staff and family accounts, invitations and the bulk import of a village, in one place.

Every operation is a function taking an async psycopg connection, the acting person
(`common.Actor`) and a typed input (a pydantic model); it checks the actor's role and region
(`common.allow`, `common.in_scope`), writes one `admin_audit` row per changed entity in the
same transaction, and returns a typed result. The API (`gateway.routes.admin*`), the
console pages and the CLI (`eldercare admin ...`) all call these functions."""
