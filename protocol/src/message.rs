use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// Raw bytes (paths, argv entries): not necessarily UTF-8. Borrowed when the
/// shim encodes, owned when the collector decodes.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bytes<'a>(#[serde(with = "serde_bytes", borrow)] pub Cow<'a, [u8]>);

impl<'a> Bytes<'a> {
    pub fn borrowed(b: &'a [u8]) -> Self {
        Bytes(Cow::Borrowed(b))
    }
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }
    pub fn into_owned(self) -> Bytes<'static> {
        Bytes(Cow::Owned(self.0.into_owned()))
    }
}

/// Bits of [`Message::Open::access`]: what the open asked for.
pub mod access {
    pub const READ: u8 = 1;
    pub const WRITE: u8 = 2;
    pub const CREATE: u8 = 4;
    pub const TRUNCATE: u8 = 8;
    pub const APPEND: u8 = 16;
    pub const DIRECTORY: u8 = 32;
}

/// A traced process image introducing itself: the first frame of its connection.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Hello<'a> {
    pub pid: i32,
    pub ppid: i32,
    #[serde(borrow)]
    pub job_token: Bytes<'a>,
    /// The executable's absolute path; may still hold symlinks, which the
    /// collector resolves.
    #[serde(borrow)]
    pub exe: Bytes<'a>,
    #[serde(borrow)]
    pub argv: Vec<Bytes<'a>>,
    #[serde(borrow)]
    pub cwd: Bytes<'a>,
    /// CLOCK_MONOTONIC nanoseconds, comparable across the processes of a host.
    pub t_ns: u64,
}

/// Why an executable escapes the preload library.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UntracedReason {
    /// No program interpreter: the dynamic loader, and so the shim, never runs.
    StaticallyLinked,
    /// The loader runs it in secure mode and ignores LD_PRELOAD.
    Setuid,
    /// A Go program: its runtime makes raw system calls the shim cannot see.
    GoRuntime,
    /// macOS System Integrity Protection: the program, or its script's
    /// interpreter, lies under a protected system folder, and the loader
    /// drops `DYLD_*` variables for it (see [`crate::sip`]). Appended last so
    /// the encoded indices of the reasons above stay what they were.
    Sip,
}

impl UntracedReason {
    /// Short, stable name (JSON, database).
    pub fn code(self) -> &'static str {
        match self {
            UntracedReason::StaticallyLinked => "static",
            UntracedReason::Setuid => "setuid",
            UntracedReason::GoRuntime => "go",
            UntracedReason::Sip => "sip",
        }
    }

    pub fn from_code(code: &str) -> Option<UntracedReason> {
        [
            Self::StaticallyLinked,
            Self::Setuid,
            Self::GoRuntime,
            Self::Sip,
        ]
        .into_iter()
        .find(|r| r.code() == code)
    }

    /// What it means for the job, for people.
    pub fn explain(self) -> &'static str {
        match self {
            UntracedReason::StaticallyLinked => "statically linked: nothing it did was seen",
            UntracedReason::Setuid => {
                "setuid/setgid: the loader drops LD_PRELOAD, nothing it did was seen"
            }
            UntracedReason::GoRuntime => {
                "Go program: its runtime does file I/O with raw system calls, partially traced"
            }
            UntracedReason::Sip => {
                "macOS System Integrity Protection: it (or its script's interpreter) is a \
                 protected system program, for which the loader drops DYLD_INSERT_LIBRARIES: \
                 nothing it or its children did was seen; a copy outside /usr/bin, /bin, /sbin \
                 and /System (e.g. Homebrew's) can be traced"
            }
        }
    }
}

/// Git state of the job's working directory, captured before it ran.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct GitInfo {
    pub commit: Option<String>,
    pub branch: Option<String>,
    pub dirty: bool,
    pub repo_root: Option<String>,
}

/// What the CLI knows about a job that the shim cannot see.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct JobMeta {
    pub job_token: String,
    /// "run" or "build".
    pub kind: String,
    pub argv: Vec<String>,
    pub cwd: String,
    /// Unix time in seconds.
    pub started_at: f64,
    pub ended_at: f64,
    /// Shell convention: the exit code, or 128+N when killed by signal N.
    pub exit_status: i32,
    pub root_pid: i32,
    pub git: Option<GitInfo>,
    /// The command itself escapes tracing (roar, not a traced process,
    /// exec'd it): its path and why.
    pub root_untraced: Option<(String, UntracedReason)>,
}

/// Everything that travels to the collector. Paths are absolute; `t_ns` is
/// CLOCK_MONOTONIC so events of different processes can be ordered.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum Message<'a> {
    #[serde(borrow)]
    Hello(Hello<'a>),
    /// `result` is the fd, or minus errno when the open failed.
    Open {
        #[serde(borrow)]
        path: Bytes<'a>,
        access: u8,
        result: i32,
        t_ns: u64,
    },
    /// A successful rename (also renameat/renameat2).
    Rename {
        #[serde(borrow)]
        from: Bytes<'a>,
        #[serde(borrow)]
        to: Bytes<'a>,
        t_ns: u64,
    },
    /// A successful unlink or rmdir.
    Unlink {
        #[serde(borrow)]
        path: Bytes<'a>,
        t_ns: u64,
    },
    /// A successful link (hard or symbolic) creating `to`.
    Link {
        #[serde(borrow)]
        from: Bytes<'a>,
        #[serde(borrow)]
        to: Bytes<'a>,
        symbolic: bool,
        t_ns: u64,
    },
    /// The working directory changed.
    Chdir {
        #[serde(borrow)]
        path: Bytes<'a>,
        t_ns: u64,
    },
    /// The process is about to exec `path`; the new image says Hello itself.
    Exec {
        #[serde(borrow)]
        path: Bytes<'a>,
        t_ns: u64,
    },
    /// The process is about to exec `path`, which the preload library cannot
    /// (fully) trace.
    Untraced {
        #[serde(borrow)]
        path: Bytes<'a>,
        reason: UntracedReason,
        t_ns: u64,
    },
    /// The process is exiting with this status (exit, _exit, return from main).
    Exit { status: i32, t_ns: u64 },
    /// The process closed `fd`, which it had opened for writing: the file
    /// may be complete, so the collector can hash it while the job goes on.
    Close { fd: i32, t_ns: u64 },
    /// From the CLI once the command has ended: record the job.
    FinishJob(JobMeta),
}

/// The collector's answer to [`Message::FinishJob`].
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum Reply {
    Recorded {
        job_id: i64,
        step: i64,
        uid: String,
    },
    Failed {
        reason: String,
    },
    /// Sent while the job's remaining files are hashed (large jobs only),
    /// before `Recorded` or `Failed`.
    Progress {
        hashed_bytes: u64,
        total_bytes: u64,
        hashed_files: u64,
        total_files: u64,
    },
}
