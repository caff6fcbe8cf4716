"""Personal information (PIPL art. 28-29, 44-47): consent records, the health-data gate,
the audit of list and stream reads, the export of everything held about one elder, and
erasure when the elder leaves the service (docs/operations.md, "Personal information")."""
