"""Access: who may see and do what, principals, roles and the rules that decide
(:mod:`.rules`); users, projects and allocations (:mod:`.projects`); compliance rules and
what they decide (:mod:`.compliance`); and the audit log's record (:mod:`.audit`)."""
