//! The lineage database (`.roar/roar.db`). All SQL of roar lives here; the
//! CLI reads through the same functions.

use std::path::Path;
use std::time::Duration;

use roar_protocol::{GitInfo, JobMeta, UntracedReason};

use crate::python::Runtime;
use crate::trackers::TrackerRun;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use serde::{Deserialize, Serialize};

mod labels;
mod registration;

pub use labels::{LabelVersion, SearchHit};
pub use registration::Registration;
pub use rusqlite::{Error, ErrorCode};
pub type Result<T> = rusqlite::Result<T>;

/// Each entry migrates the schema from version `index` to `index + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE sessions (
    id          INTEGER PRIMARY KEY,
    hash        TEXT NOT NULL UNIQUE,
    created_at  REAL NOT NULL,
    active      INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY,
    uid         TEXT NOT NULL UNIQUE,
    session_id  INTEGER NOT NULL REFERENCES sessions(id),
    step        INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    command     TEXT NOT NULL,          -- JSON list of argv strings
    cwd         TEXT NOT NULL,
    started_at  REAL NOT NULL,
    ended_at    REAL NOT NULL,
    exit_status INTEGER NOT NULL,
    git_commit  TEXT,
    git_branch  TEXT,
    git_dirty   INTEGER,
    git_repo    TEXT,
    tracer      TEXT NOT NULL,
    stats       TEXT NOT NULL,          -- JSON JobStats
    UNIQUE (session_id, step)
);
CREATE TABLE processes (
    job_id      INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    pid         INTEGER NOT NULL,
    ppid        INTEGER NOT NULL,
    exe         BLOB NOT NULL,
    argv        TEXT NOT NULL,          -- JSON list of argv strings
    exit_status INTEGER,
    detached    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX processes_job ON processes(job_id);
CREATE TABLE artifacts (
    id          INTEGER PRIMARY KEY,
    hash        TEXT NOT NULL UNIQUE,   -- BLAKE3, 64 hex
    size        INTEGER NOT NULL,
    first_seen  REAL NOT NULL
);
CREATE TABLE job_inputs (
    job_id      INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    artifact_id INTEGER NOT NULL REFERENCES artifacts(id),
    path        BLOB NOT NULL,
    PRIMARY KEY (job_id, path)
);
CREATE INDEX job_inputs_artifact ON job_inputs(artifact_id);
CREATE INDEX job_inputs_path ON job_inputs(path);
CREATE TABLE job_outputs (
    job_id      INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    artifact_id INTEGER NOT NULL REFERENCES artifacts(id),
    path        BLOB NOT NULL,
    PRIMARY KEY (job_id, path)
);
CREATE INDEX job_outputs_artifact ON job_outputs(artifact_id);
CREATE INDEX job_outputs_path ON job_outputs(path);
CREATE TABLE hash_cache (
    dev         INTEGER NOT NULL,
    ino         INTEGER NOT NULL,
    size        INTEGER NOT NULL,
    mtime_ns    INTEGER NOT NULL,
    ctime_ns    INTEGER NOT NULL,
    hash        TEXT NOT NULL,
    PRIMARY KEY (dev, ino)
);
"#,
    r#"
ALTER TABLE jobs ADD COLUMN untraced TEXT NOT NULL DEFAULT '[]';  -- JSON list of Untraced
"#,
    r#"
CREATE TABLE process_files (
    job_id      INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    pid         INTEGER NOT NULL,
    path        BLOB NOT NULL,
    mode        TEXT NOT NULL           -- 'r', 'w' or 'rw'
);
CREATE INDEX process_files_job ON process_files(job_id, pid);
"#,
    r#"
ALTER TABLE jobs ADD COLUMN runtime TEXT NOT NULL DEFAULT '{}';  -- JSON python::Runtime
"#,
    r#"
ALTER TABLE jobs ADD COLUMN trackers TEXT NOT NULL DEFAULT '[]';  -- JSON list of trackers::TrackerRun
"#,
    r#"
-- Every version of every label document; nothing is changed in place.
CREATE TABLE label_versions (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,          -- job | artifact | dag
    target_id   INTEGER NOT NULL,       -- jobs.id | artifacts.id | sessions.id
    version     INTEGER NOT NULL,       -- 1, 2, ... per target
    created_at  REAL NOT NULL,
    origin      TEXT NOT NULL,          -- who wrote this version: user | system
    document    TEXT NOT NULL,          -- JSON object, the whole document
    origins     TEXT NOT NULL,          -- JSON {dotted key: user | system}
    UNIQUE (kind, target_id, version)
);
-- The current document of each target, one row per leaf, for search.
CREATE TABLE label_values (
    kind        TEXT NOT NULL,
    target_id   INTEGER NOT NULL,
    key         TEXT NOT NULL,          -- dotted
    type        TEXT NOT NULL,          -- number | string | bool
    num         REAL,                   -- numbers, and booleans as 0/1
    str         TEXT,                   -- strings
    PRIMARY KEY (kind, target_id, key)
) WITHOUT ROWID;
CREATE INDEX label_values_num ON label_values(key, num);
CREATE INDEX label_values_str ON label_values(key, str);
"#,
    r#"
-- What `roar register` asked of each GLaaS server, and where it got to.
CREATE TABLE registrations (
    server            TEXT NOT NULL,
    target            TEXT NOT NULL,    -- artifact:HASH | job:UID | dag:SESSION-HASH
    client_session_id TEXT NOT NULL,    -- sent again to resume
    remote_id         TEXT,             -- the server's registration session
    lineage_hash      TEXT,             -- set once finalized
    url               TEXT,
    finalized_at      REAL,
    PRIMARY KEY (server, target)
);
-- Everything a server has accepted, so nothing is sent twice.
CREATE TABLE registered_items (
    server  TEXT NOT NULL,
    item    TEXT NOT NULL,              -- artifact:HASH | job:UID | inputs:UID | outputs:UID | labels:KIND:ID:VERSION
    PRIMARY KEY (server, item)
) WITHOUT ROWID;
"#,
    r#"
-- The content last recorded at each path: the latest job's, its output
-- over its input. It replaces indexes of every job's edges by path, into
-- which each new job inserted at random places: ~1 page written per input
-- once the history was deep (5,000 inputs at 78 jobs: 80 ms of inserts and
-- 100 ms of commit and checkpoint).
CREATE TABLE path_latest (
    path        BLOB PRIMARY KEY,
    artifact_id INTEGER NOT NULL REFERENCES artifacts(id),
    job_id      INTEGER NOT NULL,
    wrote       INTEGER NOT NULL        -- 1 when job_id wrote it, 0 when it read it
) WITHOUT ROWID;
INSERT INTO path_latest (path, artifact_id, job_id, wrote)
SELECT path, artifact_id, job_id, wrote FROM (
    SELECT path, artifact_id, job_id, wrote, ROW_NUMBER() OVER (
        PARTITION BY path ORDER BY job_id DESC, wrote DESC) AS nth
    FROM (SELECT path, artifact_id, job_id, 1 AS wrote FROM job_outputs
          UNION ALL
          SELECT path, artifact_id, job_id, 0 FROM job_inputs)
) WHERE nth = 1;
DROP INDEX job_inputs_path;
DROP INDEX job_outputs_path;
"#,
];

/// An executable the job ran that the preload library could not (fully) trace.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Untraced {
    pub exe: String,
    #[serde(with = "reason_code")]
    pub reason: UntracedReason,
}

/// Stored and shown by its short code ("static", "setuid", "go").
mod reason_code {
    use roar_protocol::UntracedReason;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(r: &UntracedReason, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(r.code())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<UntracedReason, D::Error> {
        let code = String::deserialize(d)?;
        UntracedReason::from_code(&code)
            .ok_or_else(|| D::Error::custom(format!("unknown reason {code}")))
    }
}

/// Counters a job keeps about its own recording.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct JobStats {
    pub events: u64,
    pub processes: u64,
    pub hashed_files: u64,
    pub hashed_bytes: u64,
    /// Outputs hashed while the job ran, once their writers closed them,
    /// and found unchanged at its end (included in `hashed_files`).
    #[serde(default)]
    pub hashed_early: u64,
    pub cache_hits: u64,
    /// Files written and removed again inside the job.
    pub transient: u64,
    /// Paths dropped per filter name.
    pub filtered: std::collections::BTreeMap<String, u64>,
    /// Recovered from the spool of a collector that died during the job:
    /// events sent after that are missing.
    #[serde(default)]
    pub incomplete: bool,
    /// The collector's peak resident memory while recording this job.
    #[serde(default)]
    pub collector_peak_rss_kb: u64,
    /// Problems worth telling the user (protocol mismatch, unhashable files...).
    pub warnings: Vec<String>,
}

/// A file as a job saw it: where, and which content.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRecord {
    pub path: Vec<u8>,
    pub hash: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProcessRecord {
    pub pid: i32,
    pub ppid: i32,
    pub exe: Vec<u8>,
    pub argv: Vec<Vec<u8>>,
    pub exit_status: Option<i32>,
    pub detached: bool,
    /// Lineage paths (after filters) this process opened for reading.
    pub reads: Vec<Vec<u8>>,
    /// Lineage paths it opened for writing, or made by rename or link.
    pub writes: Vec<Vec<u8>>,
}

/// File identity for the hash cache: any change to content changes one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

/// Everything the collector writes for one finished job, in one transaction.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub meta: JobMeta,
    pub runtime: Runtime,
    pub trackers: Vec<TrackerRun>,
    pub tracer: String,
    pub untraced: Vec<Untraced>,
    pub processes: Vec<ProcessRecord>,
    pub inputs: Vec<FileRecord>,
    pub outputs: Vec<FileRecord>,
    pub stats: JobStats,
    pub hashed: Vec<(FileKey, String)>,
    /// Dataset-shaped output folders, stored as composite artifacts.
    pub datasets: Vec<crate::datasets::Dataset>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub id: i64,
    pub hash: String,
    pub created_at: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: i64,
    pub uid: String,
    pub session_id: i64,
    pub step: i64,
    pub kind: String,
    pub command: Vec<String>,
    pub cwd: String,
    pub started_at: f64,
    pub ended_at: f64,
    pub exit_status: i32,
    pub git: Option<GitInfo>,
    pub tracer: String,
    pub untraced: Vec<Untraced>,
    pub runtime: Runtime,
    pub trackers: Vec<TrackerRun>,
    pub stats: JobStats,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Process {
    pub pid: i32,
    pub ppid: i32,
    pub exe: String,
    pub argv: Vec<String>,
    pub exit_status: Option<i32>,
    pub detached: bool,
    pub reads: Vec<String>,
    pub writes: Vec<String>,
}

/// An artifact seen at a path by a job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobFile {
    pub artifact_id: i64,
    pub path: String,
    pub hash: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    pub id: i64,
    pub hash: String,
    pub size: u64,
    pub first_seen: f64,
}

pub struct Store {
    conn: Connection,
}

const JOB_COLUMNS: &str = "id, uid, session_id, step, kind, command, cwd, started_at, ended_at, \
     exit_status, git_commit, git_branch, git_dirty, git_repo, tracer, stats, untraced, runtime, trackers";

fn job_from_row(row: &Row) -> Result<Job> {
    let command: String = row.get(5)?;
    let stats: String = row.get(15)?;
    let git_dirty: Option<bool> = row.get(12)?;
    let git = git_dirty.map(|dirty| -> Result<GitInfo> {
        Ok(GitInfo {
            commit: row.get(10)?,
            branch: row.get(11)?,
            dirty,
            repo_root: row.get(13)?,
        })
    });
    Ok(Job {
        id: row.get(0)?,
        uid: row.get(1)?,
        session_id: row.get(2)?,
        step: row.get(3)?,
        kind: row.get(4)?,
        command: serde_json::from_str(&command).unwrap_or_default(),
        cwd: row.get(6)?,
        started_at: row.get(7)?,
        ended_at: row.get(8)?,
        exit_status: row.get(9)?,
        git: git.transpose()?,
        tracer: row.get(14)?,
        untraced: serde_json::from_str(&row.get::<_, String>(16)?).unwrap_or_default(),
        runtime: serde_json::from_str(&row.get::<_, String>(17)?).unwrap_or_default(),
        trackers: serde_json::from_str(&row.get::<_, String>(18)?).unwrap_or_default(),
        stats: serde_json::from_str(&stats).unwrap_or_default(),
    })
}

fn artifact_from_row(row: &Row) -> Result<Artifact> {
    Ok(Artifact {
        id: row.get(0)?,
        hash: row.get(1)?,
        size: row.get::<_, i64>(2)? as u64,
        first_seen: row.get(3)?,
    })
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn argv_json(argv: &[Vec<u8>]) -> String {
    let strings: Vec<String> = argv.iter().map(|a| lossy(a)).collect();
    serde_json::to_string(&strings).expect("a list of strings always serialises")
}

/// Each path once, with 'r', 'w' or 'rw'.
fn access_modes<'a>(reads: &'a [Vec<u8>], writes: &'a [Vec<u8>]) -> Vec<(&'a [u8], &'static str)> {
    let mut modes: std::collections::BTreeMap<&[u8], (bool, bool)> = Default::default();
    for r in reads {
        modes.entry(r).or_default().0 = true;
    }
    for w in writes {
        modes.entry(w).or_default().1 = true;
    }
    modes
        .into_iter()
        .map(|(p, rw)| {
            let mode = match rw {
                (true, true) => "rw",
                (true, false) => "r",
                _ => "w",
            };
            (p, mode)
        })
        .collect()
}

/// Random lowercase hex from the kernel's CSPRNG (uids, session hashes, tokens).
pub fn random_hex(bytes: usize) -> String {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    let filled = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf));
    if filled.is_err() {
        // Not cryptographic, only unique enough: time, pid and a stack address.
        let seed = format!(
            "{:?}{}{:p}",
            std::time::SystemTime::now(),
            std::process::id(),
            &buf
        );
        let h = blake3::hash(seed.as_bytes());
        for (i, b) in buf.iter_mut().enumerate() {
            *b = h.as_bytes()[i % 32];
        }
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Refuses a database roar did not make (before anything writes to it) or
/// one from a newer roar, whose schema this build cannot read.
fn check_is_ours(conn: &Connection) -> Result<()> {
    let refuse = |msg: String| {
        Err(Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_NOTADB),
            Some(msg),
        ))
    };
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version as usize > MIGRATIONS.len() {
        return refuse(format!(
            "written by a newer roar (schema v{version}, this build knows v{}); upgrade roar",
            MIGRATIONS.len()
        ));
    }
    let tables: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
        [],
        |r| r.get(0),
    )?;
    if version == 0 && tables > 0 {
        return refuse("not a roar database (it holds other tables)".into());
    }
    Ok(())
}

/// A read transaction, ended when dropped (see [`Store::reading`]).
pub struct ReadBatch<'a> {
    store: &'a Store,
    open: bool,
}

impl Drop for ReadBatch<'_> {
    fn drop(&mut self) {
        if self.open {
            self.store.end_reads();
        }
    }
}

impl Store {
    /// Opens (creating if needed) and migrates the database.
    pub fn open(path: &Path) -> Result<Store> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(30))?;
        check_is_ours(&conn)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Up to 32 MiB of pages: a job's edges touch index pages all over
        // the file, and a smaller cache (SQLite's 2 MiB) rereads them.
        conn.pragma_update(None, "cache_size", -32768)?;
        let mut store = Store { conn };
        store.migrate()?;
        Ok(store)
    }

    /// Leaves the WAL to grow until this connection closes, instead of
    /// copying it into the database file (and syncing that) inside the
    /// commit that crosses 1,000 pages: for a one-job collector, whose
    /// close comes after roar run has its answer. The WAL already holds
    /// the committed job; readers see it either way.
    pub fn defer_checkpoints(&self) -> Result<()> {
        self.conn.pragma_update(None, "wal_autocheckpoint", 0)
    }

    fn migrate(&mut self) -> Result<()> {
        // Checked without a write lock first: the common case is up to date.
        if self.schema_version()? as usize >= MIGRATIONS.len() {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: usize = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (v, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", v + 1)?;
        }
        tx.commit()
    }

    pub fn schema_version(&self) -> Result<i64> {
        self.conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
    }

    pub fn active_session(&self) -> Result<Option<Session>> {
        self.conn
            .query_row(
                "SELECT id, hash, created_at FROM sessions WHERE active = 1 ORDER BY id DESC LIMIT 1",
                [],
                |r| {
                    Ok(Session {
                        id: r.get(0)?,
                        hash: r.get(1)?,
                        created_at: r.get(2)?,
                    })
                },
            )
            .optional()
    }

    /// Starts a new session and makes it the active one; earlier sessions
    /// stay queryable.
    pub fn new_session(&mut self) -> Result<Session> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute("UPDATE sessions SET active = 0 WHERE active = 1", [])?;
        tx.execute(
            "INSERT INTO sessions (hash, created_at, active) VALUES (?1, ?2, 1)",
            params![random_hex(32), now_unix()],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        self.session(id)
    }

    /// Removes a job with its processes, edges and labels. Its artifacts
    /// stay: other jobs may share their content.
    pub fn delete_job(&mut self, job_id: i64) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for table in ["job_inputs", "job_outputs", "processes", "process_files"] {
            tx.execute(&format!("DELETE FROM {table} WHERE job_id = ?1"), [job_id])?;
        }
        // What this job left last at a path is now what an earlier one did
        // (a scan of every edge: deleting a job is rare, recording is not).
        tx.execute(
            "WITH gone(path) AS (SELECT path FROM path_latest WHERE job_id = ?1)
             INSERT OR REPLACE INTO path_latest (path, artifact_id, job_id, wrote)
             SELECT path, artifact_id, job_id, wrote FROM (
                 SELECT path, artifact_id, job_id, wrote, ROW_NUMBER() OVER (
                     PARTITION BY path ORDER BY job_id DESC, wrote DESC) AS nth
                 FROM (SELECT path, artifact_id, job_id, 1 AS wrote FROM job_outputs
                       UNION ALL
                       SELECT path, artifact_id, job_id, 0 FROM job_inputs)
                 WHERE path IN gone
             ) WHERE nth = 1",
            [job_id],
        )?;
        tx.execute("DELETE FROM path_latest WHERE job_id = ?1", [job_id])?;
        for table in ["label_versions", "label_values"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE kind = 'job' AND target_id = ?1"),
                [job_id],
            )?;
        }
        tx.execute("DELETE FROM jobs WHERE id = ?1", [job_id])?;
        tx.commit()
    }

    /// The job that last wrote this content before job `before` (any
    /// session; at all when `before` is `None`), preferring one that wrote
    /// it at `path`: a copy of a file has the same content as the original.
    pub fn producer(
        &self,
        artifact_id: i64,
        before: Option<i64>,
        path: Option<&str>,
    ) -> Result<Option<Job>> {
        let id: Option<i64> = self
            .conn
            .prepare_cached(
                "SELECT job_id FROM job_outputs WHERE artifact_id = ?1 AND job_id < ?2
                 ORDER BY path = CAST(?3 AS BLOB) DESC, job_id DESC LIMIT 1",
            )?
            .query_row(
                params![artifact_id, before.unwrap_or(i64::MAX), path.unwrap_or("")],
                |r| r.get(0),
            )
            .optional()?;
        id.map(|id| self.job(id)).transpose()
    }

    /// Records a finished job in one transaction: its session step, processes,
    /// artifacts, input/output edges and the hash cache entries it produced.
    pub fn record_job(&mut self, job: &NewJob) -> Result<Job> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let session_id: i64 = match tx
            .query_row(
                "SELECT id FROM sessions WHERE active = 1 ORDER BY id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?
        {
            Some(id) => id,
            None => {
                tx.execute(
                    "INSERT INTO sessions (hash, created_at, active) VALUES (?1, ?2, 1)",
                    params![random_hex(32), now_unix()],
                )?;
                tx.last_insert_rowid()
            }
        };
        let step: i64 = tx.query_row(
            "SELECT COALESCE(MAX(step), 0) + 1 FROM jobs WHERE session_id = ?1",
            [session_id],
            |r| r.get(0),
        )?;
        let m = &job.meta;
        let git = m.git.as_ref();
        tx.execute(
            "INSERT INTO jobs (uid, session_id, step, kind, command, cwd, started_at, ended_at,
                               exit_status, git_commit, git_branch, git_dirty, git_repo, tracer, stats, untraced, runtime, trackers)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
            params![
                random_hex(16),
                session_id,
                step,
                m.kind,
                serde_json::to_string(&m.argv).expect("strings serialise"),
                m.cwd,
                m.started_at,
                m.ended_at,
                m.exit_status,
                git.and_then(|g| g.commit.clone()),
                git.and_then(|g| g.branch.clone()),
                git.map(|g| g.dirty),
                git.and_then(|g| g.repo_root.clone()),
                job.tracer,
                serde_json::to_string(&job.stats).expect("stats serialise"),
                serde_json::to_string(&job.untraced).expect("untraced serialise"),
                serde_json::to_string(&job.runtime).expect("runtime serialises"),
                serde_json::to_string(&job.trackers).expect("trackers serialise"),
            ],
        )?;
        let job_id = tx.last_insert_rowid();
        {
            let mut proc_stmt = tx.prepare(
                "INSERT INTO processes (job_id, pid, ppid, exe, argv, exit_status, detached)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            let mut file_stmt = tx.prepare(
                "INSERT INTO process_files (job_id, pid, path, mode) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for p in &job.processes {
                proc_stmt.execute(params![
                    job_id,
                    p.pid,
                    p.ppid,
                    p.exe,
                    argv_json(&p.argv),
                    p.exit_status,
                    p.detached
                ])?;
                for (path, mode) in access_modes(&p.reads, &p.writes) {
                    file_stmt.execute(params![job_id, p.pid, path, mode])?;
                }
            }
            let now = now_unix();
            // Most artifacts of a job are known already (unchanged inputs):
            // looked up first, inserted only when new. (An upsert rewrites
            // the known row: ~2x slower on a 5,000-file job.)
            let mut known = tx.prepare("SELECT id FROM artifacts WHERE hash = ?1")?;
            let mut insert = tx.prepare(
                "INSERT INTO artifacts (hash, size, first_seen) VALUES (?1, ?2, ?3) RETURNING id",
            )?;
            let mut artifact_id = |f: &FileRecord| -> Result<i64> {
                match known.query_row([&f.hash], |r| r.get(0)).optional()? {
                    Some(id) => Ok(id),
                    None => insert.query_row(params![f.hash, f.size as i64, now], |r| r.get(0)),
                }
            };
            // Inputs first: at a path the job read and wrote, the output is
            // the latest.
            let mut latest = tx.prepare(
                "INSERT INTO path_latest (path, artifact_id, job_id, wrote) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (path) DO UPDATE SET artifact_id = excluded.artifact_id,
                     job_id = excluded.job_id, wrote = excluded.wrote",
            )?;
            for (table, files, wrote) in [
                ("job_inputs", &job.inputs, false),
                ("job_outputs", &job.outputs, true),
            ] {
                let mut edge = tx.prepare(&format!(
                    "INSERT OR REPLACE INTO {table} (job_id, artifact_id, path) VALUES (?1, ?2, ?3)"
                ))?;
                for f in files {
                    let id = artifact_id(f)?;
                    edge.execute(params![job_id, id, f.path])?;
                    latest.execute(params![f.path, id, job_id, wrote])?;
                }
            }
            // A dataset folder is an output too: its content is its members'.
            let mut edge = tx.prepare(
                "INSERT OR REPLACE INTO job_outputs (job_id, artifact_id, path) VALUES (?1, ?2, ?3)",
            )?;
            for d in &job.datasets {
                let id = artifact_id(&FileRecord {
                    path: d.path.clone(),
                    hash: d.hash.clone(),
                    size: d.size,
                })?;
                edge.execute(params![job_id, id, d.path])?;
                latest.execute(params![d.path, id, job_id, true])?;
                labels::write_system_labels(
                    &tx,
                    crate::labels::LabelKind::Artifact,
                    id,
                    &[
                        ("dataset.id", d.hash[..16].into()),
                        ("dataset.modality", d.modality.into()),
                        ("dataset.type", d.layout.into()),
                    ],
                )?;
            }
            let mut cache = tx.prepare(
                "INSERT OR REPLACE INTO hash_cache (dev, ino, size, mtime_ns, ctime_ns, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for (k, hash) in &job.hashed {
                cache.execute(params![
                    k.dev as i64,
                    k.ino as i64,
                    k.size as i64,
                    k.mtime_ns,
                    k.ctime_ns,
                    hash
                ])?;
            }
        }
        labels::write_job_auto_labels(&tx, job_id, &job.meta, &job.tracer)?;
        tx.commit()?;
        self.job(job_id)
    }

    /// Groups the reads that follow into one read transaction, until the
    /// guard drops: one snapshot and one lock of the WAL index for a burst
    /// of lookups, instead of one of each per statement (two fcntl locks,
    /// a quarter of a cache lookup's time). Not for long: a read
    /// transaction keeps checkpoints from recycling the WAL.
    pub fn reading(&self) -> ReadBatch<'_> {
        ReadBatch {
            store: self,
            open: self.begin_reads(),
        }
    }

    /// [`Store::reading`] without the guard; true when a transaction began.
    pub fn begin_reads(&self) -> bool {
        self.conn.execute_batch("BEGIN DEFERRED").is_ok()
    }

    pub fn end_reads(&self) {
        let _ = self.conn.execute_batch("COMMIT");
    }

    pub fn cached_hash(&self, key: &FileKey) -> Result<Option<String>> {
        self.conn
            .prepare_cached(
                "SELECT hash FROM hash_cache WHERE dev = ?1 AND ino = ?2 AND size = ?3
                 AND mtime_ns = ?4 AND ctime_ns = ?5",
            )?
            .query_row(
                params![
                    key.dev as i64,
                    key.ino as i64,
                    key.size as i64,
                    key.mtime_ns,
                    key.ctime_ns
                ],
                |r| r.get(0),
            )
            .optional()
    }

    pub fn job(&self, id: i64) -> Result<Job> {
        self.conn.query_row(
            &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"),
            [id],
            job_from_row,
        )
    }

    pub fn session_jobs(&self, session_id: i64) -> Result<Vec<Job>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE session_id = ?1 ORDER BY step"
        ))?;
        let rows = stmt.query_map([session_id], job_from_row)?;
        rows.collect()
    }

    pub fn job_by_step(&self, session_id: i64, step: i64) -> Result<Option<Job>> {
        self.conn
            .query_row(
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE session_id = ?1 AND step = ?2"),
                [session_id, step],
                job_from_row,
            )
            .optional()
    }

    pub fn jobs_by_uid_prefix(&self, prefix: &str) -> Result<Vec<Job>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE substr(uid, 1, length(?1)) = ?1 ORDER BY id"
        ))?;
        let rows = stmt.query_map([prefix.to_ascii_lowercase()], job_from_row)?;
        rows.collect()
    }

    pub fn job_processes(&self, job_id: i64) -> Result<Vec<Process>> {
        let mut files = self.conn.prepare_cached(
            "SELECT pid, path, mode FROM process_files WHERE job_id = ?1 ORDER BY path",
        )?;
        let mut by_pid: std::collections::HashMap<i32, (Vec<String>, Vec<String>)> =
            std::collections::HashMap::new();
        for row in files.query_map([job_id], |r| {
            Ok((
                r.get::<_, i32>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, String>(2)?,
            ))
        })? {
            let (pid, path, mode) = row?;
            let entry = by_pid.entry(pid).or_default();
            if mode.contains('r') {
                entry.0.push(lossy(&path));
            }
            if mode.contains('w') {
                entry.1.push(lossy(&path));
            }
        }
        let mut stmt = self.conn.prepare(
            "SELECT pid, ppid, exe, argv, exit_status, detached FROM processes
             WHERE job_id = ?1 ORDER BY rowid",
        )?;
        let rows = stmt.query_map([job_id], |r| {
            let exe: Vec<u8> = r.get(2)?;
            let argv: String = r.get(3)?;
            let pid: i32 = r.get(0)?;
            let (reads, writes) = by_pid.get(&pid).cloned().unwrap_or_default();
            Ok(Process {
                reads,
                writes,
                pid,
                ppid: r.get(1)?,
                exe: lossy(&exe),
                argv: serde_json::from_str(&argv).unwrap_or_default(),
                exit_status: r.get(4)?,
                detached: r.get(5)?,
            })
        })?;
        rows.collect()
    }

    fn job_files(&self, table: &str, job_id: i64) -> Result<Vec<JobFile>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT e.path, a.hash, a.size, a.id FROM {table} e JOIN artifacts a ON a.id = e.artifact_id
             WHERE e.job_id = ?1 ORDER BY e.path"
        ))?;
        let rows = stmt.query_map([job_id], |r| {
            let path: Vec<u8> = r.get(0)?;
            Ok(JobFile {
                artifact_id: r.get(3)?,
                path: lossy(&path),
                hash: r.get(1)?,
                size: r.get::<_, i64>(2)? as u64,
            })
        })?;
        rows.collect()
    }

    pub fn job_inputs(&self, job_id: i64) -> Result<Vec<JobFile>> {
        self.job_files("job_inputs", job_id)
    }

    pub fn job_outputs(&self, job_id: i64) -> Result<Vec<JobFile>> {
        self.job_files("job_outputs", job_id)
    }

    /// The content most recently recorded at `path` by any job (as output
    /// first, since a write is the later event of the two).
    pub fn latest_artifact_at(&self, path: &[u8]) -> Result<Option<Artifact>> {
        self.conn
            .query_row(
                "SELECT a.id, a.hash, a.size, a.first_seen
                 FROM path_latest p JOIN artifacts a ON a.id = p.artifact_id
                 WHERE p.path = ?1",
                [path],
                artifact_from_row,
            )
            .optional()
    }

    pub fn artifacts_by_hash_prefix(&self, prefix: &str) -> Result<Vec<Artifact>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, hash, size, first_seen FROM artifacts
             WHERE substr(hash, 1, length(?1)) = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([prefix.to_ascii_lowercase()], artifact_from_row)?;
        rows.collect()
    }

    fn artifact_jobs(&self, table: &str, artifact_id: i64) -> Result<Vec<(Job, String)>> {
        let cols: String = JOB_COLUMNS
            .split(", ")
            .map(|c| format!("j.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {cols}, e.path FROM {table} e JOIN jobs j ON j.id = e.job_id
             WHERE e.artifact_id = ?1 ORDER BY j.id"
        ))?;
        let path_column = JOB_COLUMNS.split(", ").count();
        let rows = stmt.query_map([artifact_id], |r| {
            let path: Vec<u8> = r.get(path_column)?;
            Ok((job_from_row(r)?, lossy(&path)))
        })?;
        rows.collect()
    }

    pub fn artifact(&self, id: i64) -> Result<Artifact> {
        self.conn
            .prepare_cached("SELECT id, hash, size, first_seen FROM artifacts WHERE id = ?1")?
            .query_row([id], artifact_from_row)
    }

    /// A path the artifact was written to (or, failing that, read from).
    pub fn artifact_path(&self, id: i64) -> Result<Option<String>> {
        let path: Option<Vec<u8>> = self
            .conn
            .prepare_cached(
                "SELECT path FROM (SELECT path, 0 AS o FROM job_outputs WHERE artifact_id = ?1
                                   UNION ALL
                                   SELECT path, 1 FROM job_inputs WHERE artifact_id = ?1)
                 ORDER BY o LIMIT 1",
            )?
            .query_row([id], |r| r.get(0))
            .optional()?;
        Ok(path.map(|p| lossy(&p)))
    }

    pub fn session(&self, id: i64) -> Result<Session> {
        self.conn.query_row(
            "SELECT id, hash, created_at FROM sessions WHERE id = ?1",
            [id],
            |r| {
                Ok(Session {
                    id: r.get(0)?,
                    hash: r.get(1)?,
                    created_at: r.get(2)?,
                })
            },
        )
    }

    pub fn sessions_by_hash_prefix(&self, prefix: &str) -> Result<Vec<Session>> {
        let mut stmt = self.conn.prepare(
            "SELECT id FROM sessions WHERE substr(hash, 1, length(?1)) = ?1 ORDER BY id",
        )?;
        let ids: Vec<i64> = stmt
            .query_map([prefix.to_ascii_lowercase()], |r| r.get(0))?
            .collect::<Result<_>>()?;
        ids.into_iter().map(|id| self.session(id)).collect()
    }

    /// Jobs that wrote this artifact, with the path they wrote it to.
    pub fn artifact_writers(&self, artifact_id: i64) -> Result<Vec<(Job, String)>> {
        self.artifact_jobs("job_outputs", artifact_id)
    }

    /// Jobs that read this artifact, with the path they read it from.
    pub fn artifact_readers(&self, artifact_id: i64) -> Result<Vec<(Job, String)>> {
        self.artifact_jobs("job_inputs", artifact_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(argv: &[&str]) -> JobMeta {
        JobMeta {
            job_token: "t".into(),
            kind: "run".into(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            cwd: "/w".into(),
            started_at: 1.0,
            ended_at: 2.0,
            exit_status: 0,
            root_pid: 10,
            git: None,
            root_untraced: None,
        }
    }

    fn file(path: &str, hash: char) -> FileRecord {
        FileRecord {
            path: path.as_bytes().to_vec(),
            hash: hash.to_string().repeat(64),
            size: 3,
        }
    }

    #[test]
    fn foreign_and_newer_databases_are_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let foreign = dir.path().join("foreign.db");
        Connection::open(&foreign)
            .unwrap()
            .execute_batch("CREATE TABLE notes (t TEXT)")
            .unwrap();
        let before = std::fs::read(&foreign).unwrap();
        let err = Store::open(&foreign).err().unwrap().to_string();
        assert!(err.contains("not a roar database"), "{err}");
        assert_eq!(std::fs::read(&foreign).unwrap(), before);

        let newer = dir.path().join("newer.db");
        Connection::open(&newer)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        let err = Store::open(&newer).err().unwrap().to_string();
        assert!(err.contains("newer roar"), "{err}");

        let garbage = dir.path().join("garbage.db");
        std::fs::write(&garbage, "this is not sqlite at all, not even close").unwrap();
        assert!(Store::open(&garbage).is_err());
    }

    #[test]
    fn jobs_get_steps_and_edges() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("roar.db")).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let a = store
            .record_job(&job(&["prep"], vec![], vec![file("/w/data.csv", 'a')]))
            .unwrap();
        let b = store
            .record_job(&job(
                &["train"],
                vec![file("/w/data.csv", 'a')],
                vec![file("/w/model.pkl", 'b')],
            ))
            .unwrap();
        assert_eq!((a.step, b.step), (1, 2));
        assert_eq!(a.session_id, b.session_id);
        let art = store.latest_artifact_at(b"/w/model.pkl").unwrap().unwrap();
        assert_eq!(art.hash, "b".repeat(64));
        let writers = store.artifact_writers(art.id).unwrap();
        assert_eq!(writers[0].0.command, vec!["train"]);
        let data = store.artifacts_by_hash_prefix("aaaaaa").unwrap();
        assert_eq!(store.artifact_readers(data[0].id).unwrap()[0].0.step, 2);
        // Reopening does not re-run migrations.
        drop(store);
        let store = Store::open(&dir.path().join("roar.db")).unwrap();
        assert_eq!(store.session_jobs(a.session_id).unwrap().len(), 2);
        assert_eq!(store.jobs_by_uid_prefix(&a.uid[..6]).unwrap()[0].id, a.id);
    }

    fn job(argv: &[&str], inputs: Vec<FileRecord>, outputs: Vec<FileRecord>) -> NewJob {
        NewJob {
            meta: meta(argv),
            tracer: "preload".into(),
            runtime: Runtime::default(),
            trackers: vec![],
            untraced: vec![],
            processes: vec![],
            inputs,
            outputs,
            stats: JobStats::default(),
            hashed: vec![],
            datasets: vec![],
        }
    }

    fn latest(store: &Store, path: &str) -> Option<char> {
        let art = store.latest_artifact_at(path.as_bytes()).unwrap()?;
        art.hash.chars().next()
    }

    /// The content last recorded at a path: the latest job's, its output
    /// over its input, and an earlier job's again once the later is gone.
    #[test]
    fn the_latest_content_at_a_path_follows_records_and_deletions() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("roar.db")).unwrap();
        store
            .record_job(&job(&["make"], vec![], vec![file("/w/f", 'a')]))
            .unwrap();
        let edit = store
            .record_job(&job(
                &["edit"],
                vec![file("/w/f", 'a')],
                vec![file("/w/f", 'b')],
            ))
            .unwrap();
        assert_eq!(latest(&store, "/w/f"), Some('b'));
        let read = store
            .record_job(&job(
                &["read"],
                vec![file("/w/f", 'c'), file("/w/g", 'd')],
                vec![],
            ))
            .unwrap();
        assert_eq!(latest(&store, "/w/f"), Some('c'));
        store.delete_job(read.id).unwrap();
        assert_eq!(latest(&store, "/w/f"), Some('b'));
        assert_eq!(latest(&store, "/w/g"), None);
        store.delete_job(edit.id).unwrap();
        assert_eq!(latest(&store, "/w/f"), Some('a'));
    }

    /// A database from before `path_latest` gets it filled from its edges.
    #[test]
    fn the_latest_content_table_is_filled_from_older_databases() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("roar.db");
        let mut store = Store::open(&db).unwrap();
        store
            .record_job(&job(&["make"], vec![], vec![file("/w/f", 'a')]))
            .unwrap();
        store
            .record_job(&job(
                &["edit"],
                vec![file("/w/f", 'a'), file("/w/g", 'g')],
                vec![file("/w/f", 'b')],
            ))
            .unwrap();
        // Back to the schema before the table (its migration is the last).
        store
            .conn
            .execute_batch(
                "DROP TABLE path_latest;
                 CREATE INDEX job_inputs_path ON job_inputs(path);
                 CREATE INDEX job_outputs_path ON job_outputs(path);",
            )
            .unwrap();
        store
            .conn
            .pragma_update(None, "user_version", MIGRATIONS.len() - 1)
            .unwrap();
        drop(store);
        let store = Store::open(&db).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        assert_eq!(latest(&store, "/w/f"), Some('b'));
        assert_eq!(latest(&store, "/w/g"), Some('g'));
    }
}
