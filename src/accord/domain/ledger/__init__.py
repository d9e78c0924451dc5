"""The reciprocity ledger: usage records of finished jobs (:mod:`.usage`), the double-entry,
hash-chained entries they post (:mod:`.entries`), checking stored rows (:mod:`.verify`), the
RFC 9162 Merkle tree (:mod:`.merkle`), signed tree heads (:mod:`.signing`), settlement
statements (:mod:`.statement`), and a site's accounting reconciled against Accord's
(:mod:`.reconcile`)."""
