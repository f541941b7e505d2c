"""The auditor's checks of the audit log, pure: what a compliance officer's machine verifies.

Nothing here does I/O: the caller passes a `walk.FetchMany` (paths in, contents out, None
for a resource the log does not serve) and decides how to fetch. `hotline audit`
(cli/audit.py) fetches over HTTP and keeps the state file; the audit log's start-up check
(services/audit-log/integrity.py) reads its own store. One module per concern:

- `failures` – `AuditFailure` and the `Rule` each failure names (stable: scripts read them).
- `entry`    – `AuditEntry`, the typed entry of each event type, and its canonical bytes
               (the leaf); the audit log writes it, the policy and proofs read it.
- `trust`    – checkpoints: the log's signature, witness cosignatures against a quorum, and
               the checkpoint trusted last (rollback, fork, consistency proof).
- `walk`     – the tree recomputed from the entries: every bundle re-hashed, every tile
               compared, the root recomputed (`TreeWalk`, `walk_log`).
- `policy`   – `NonExposurePolicy`: the non-exposure rules over every entry.
- `verdict`  – `audit_log`, every check in order, and its `Verdict`.
- `proofs`   – case proof files: built from tiles (`build_case_proof`), checked offline.

Integrity failures stop the walk (nothing after them can be trusted); policy violations
are all collected.
"""
