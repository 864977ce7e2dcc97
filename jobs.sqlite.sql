-- fylrmig ledger: one jobs.sqlite per data folder. Applied with executescript() outside any transaction;
-- every statement is idempotent so the file can be applied at each start. Bump schema_version and add a
-- migration in fylrmig.py (Ledger._migrate) when a later version changes a table.

PRAGMA journal_mode = WAL;

CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER NOT NULL
);

-- One row per backup or restore run of a backup folder. A --purge starts a new row; --continue reuses the
-- newest row of (dir, kind). params never hold secrets (passwords, client secrets, tokens are "***").
CREATE TABLE IF NOT EXISTS jobs (
    id               INTEGER PRIMARY KEY,
    name             TEXT NOT NULL,                 -- backup name = folder name
    kind             TEXT NOT NULL CHECK (kind IN ('backup', 'restore')),
    dir              TEXT NOT NULL,                 -- absolute backup folder
    params           TEXT NOT NULL,                 -- JSON, secrets masked
    setup            TEXT NOT NULL,                 -- JSON: what a --continue must not change (server, filters)
    state            TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled', 'interrupted')),
    phase            TEXT NOT NULL DEFAULT '',
    owner            TEXT NOT NULL DEFAULT '',      -- "<host>:<pid>:<start time>" of the running process
    heartbeat        REAL NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    started_at       REAL NOT NULL,
    finished_at      REAL,
    runtime          REAL NOT NULL DEFAULT 0,       -- seconds, accumulated over all runs
    counters         TEXT NOT NULL DEFAULT '{}',    -- JSON: progress per phase
    last_error       TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_dir ON jobs (dir, kind, id);

-- One row per unit of work, keyed deterministically so a continued run finds the same chunks again.
CREATE TABLE IF NOT EXISTS chunks (
    job_id     INTEGER NOT NULL REFERENCES jobs (id),
    key        TEXT NOT NULL,                       -- e.g. "fetch/db/bilder/offset=400" or "post/0040__db__bilder.json/0"
    state      TEXT NOT NULL CHECK (state IN ('ready', 'running', 'done', 'failed')),
    attempts   INTEGER NOT NULL DEFAULT 0,
    items      INTEGER NOT NULL DEFAULT 0,
    sha256     TEXT,                                -- of what was written (backup) or sent (restore)
    bytes      INTEGER NOT NULL DEFAULT 0,
    output     TEXT,                                -- file written / extra facts (JSON)
    owner      TEXT NOT NULL DEFAULT '',
    error      TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (job_id, key)
);

-- One row per packed file (backup) or uploaded file (restore).
CREATE TABLE IF NOT EXISTS files (
    job_id     INTEGER NOT NULL REFERENCES jobs (id),
    source_id  TEXT NOT NULL,                       -- source file id
    version    TEXT NOT NULL,                       -- rendition name ("original", "preview", ...)
    state      TEXT NOT NULL CHECK (state IN ('ready', 'running', 'done', 'failed', 'skipped')),
    target_id  TEXT,                                -- restore: file id in the target
    path       TEXT,                                -- backup: path relative to the backup folder
    bytes      INTEGER NOT NULL DEFAULT 0,
    sha256     TEXT,
    error      TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (job_id, source_id, version)
);

-- Source -> target mapping found by a restore (or source id -> reference found by a backup); written in the
-- same transaction that marks its chunk done.
CREATE TABLE IF NOT EXISTS ids (
    job_id    INTEGER NOT NULL REFERENCES jobs (id),
    kind      TEXT NOT NULL,                        -- user, group, pool, tag, taggroup, collection, message, ...
    source_id TEXT NOT NULL,
    target    TEXT NOT NULL,                        -- target id, or reference
    PRIMARY KEY (job_id, kind, source_id)
);
