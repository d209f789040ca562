//! The tracing context, read from the environment once at load (before the
//! program can scrub it), and the repair of child environments that dropped
//! it (`env -i`, `subprocess.run(env={})`).

use std::ffi::CStr;
use std::sync::OnceLock;

use libc::c_char;
use roar_protocol::env as names;

pub struct Snapshot {
    /// `ROAR_SOCKET`; `None` makes the whole shim passive.
    pub socket: Option<Vec<u8>>,
    /// `ROAR_JOB`, empty when unset.
    pub job: Vec<u8>,
    pub verbose: bool,
    /// This library's path as the loader knows it (dladdr).
    pub self_path: Vec<u8>,
    /// Launcher mode (no `ROAR_SOCKET`; a `.roar/` above the working
    /// directory): the project root, and the environment to start its
    /// collector with.
    pub launcher: Option<(Vec<u8>, Vec<Vec<u8>>)>,
    /// Entries of the load-time `LD_PRELOAD` that name this library.
    self_entries: Vec<Vec<u8>>,
}

static SNAPSHOT: OnceLock<Snapshot> = OnceLock::new();

pub fn get() -> Option<&'static Snapshot> {
    SNAPSHOT.get()
}

/// Iterates a NULL-terminated `envp` (NULL itself counts as empty).
///
/// # Safety
/// `envp` is NULL or a NULL-terminated array of NUL-terminated strings that
/// outlive the iterator.
unsafe fn entries<'a>(envp: *const *const c_char) -> impl Iterator<Item = &'a [u8]> {
    let mut i = 0;
    std::iter::from_fn(move || {
        if envp.is_null() {
            return None;
        }
        // SAFETY: by the contract above, every index up to the NULL is valid.
        let p = unsafe { *envp.add(i) };
        if p.is_null() {
            return None;
        }
        i += 1;
        // SAFETY: a non-NULL entry is a NUL-terminated string.
        Some(unsafe { CStr::from_ptr(p) }.to_bytes())
    })
}

fn value<'a>(entry: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let rest = entry.strip_prefix(name.as_bytes())?;
    rest.strip_prefix(b"=")
}

fn basename(p: &[u8]) -> &[u8] {
    p.rsplit(|&b| b == b'/').next().unwrap_or(p)
}

fn preload_entries(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b':' || b == b' ')
        .filter(|e| !e.is_empty())
}

fn self_path() -> Vec<u8> {
    // SAFETY: Dl_info is plain data; dladdr fills it for an address inside
    // this library (this very function).
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        if libc::dladdr(self_path as *const libc::c_void, &mut info) != 0
            && !info.dli_fname.is_null()
        {
            return CStr::from_ptr(info.dli_fname).to_bytes().to_vec();
        }
    }
    Vec::new()
}

/// Takes the snapshot from the constructor's `envp`.
///
/// # Safety
/// `envp` as for [`entries`].
pub unsafe fn capture(envp: *const *const c_char) -> &'static Snapshot {
    let mut socket = None;
    let mut job = Vec::new();
    let mut verbose = false;
    let mut preload = Vec::new();
    let mut all = Vec::new();
    // SAFETY: forwarded contract.
    for e in unsafe { entries(envp) } {
        all.push(e);
        if let Some(v) = value(e, names::SOCKET) {
            socket = Some(v.to_vec()).filter(|v| !v.is_empty());
        } else if let Some(v) = value(e, names::JOB) {
            job = v.to_vec();
        } else if let Some(v) = value(e, names::VERBOSE) {
            verbose = v == b"1";
        } else if let Some(v) = value(e, names::PRELOAD) {
            preload = v.to_vec();
        }
    }
    let mut self_path = self_path();
    let base = basename(&self_path).to_vec();
    let self_entries: Vec<Vec<u8>> = preload_entries(&preload)
        .filter(|e| !base.is_empty() && basename(e) == base)
        .map(<[u8]>::to_vec)
        .collect();
    if self_path.is_empty() {
        if let Some(e) = self_entries.first() {
            self_path = e.clone();
        }
    }
    // Launcher mode: the nearest project above the working directory.
    let mut launcher = None;
    if socket.is_none() {
        let mut cwd = vec![0u8; crate::paths::PATH_MAX];
        let n = crate::sys::getcwd(&mut cwd);
        cwd.truncate(n);
        if let Some(root) = crate::launcher::project_root(&cwd) {
            socket = Some(crate::launcher::socket_of(&root));
            launcher = Some((root, all.iter().map(|e| e.to_vec()).collect()));
        }
    }
    // A traced process without a job token starts a job of its own, which
    // its descendants inherit (env repair puts it back if they drop it).
    if socket.is_some() && job.is_empty() {
        job = crate::launcher::fresh_token();
    }
    SNAPSHOT.get_or_init(|| Snapshot {
        launcher,
        // Relative paths would break after the first chdir.
        socket: socket.map(absolute),
        self_path: absolute(self_path),
        job,
        verbose,
        self_entries,
    })
}

/// `path` against the current directory when it is relative.
fn absolute(path: Vec<u8>) -> Vec<u8> {
    if path.is_empty() || path[0] == b'/' {
        return path;
    }
    let mut cwd = vec![0u8; crate::paths::PATH_MAX];
    let n = crate::sys::getcwd(&mut cwd);
    if n == 0 {
        return path;
    }
    cwd.truncate(n);
    cwd.push(b'/');
    cwd.extend_from_slice(path.strip_prefix(b"./").unwrap_or(&path));
    cwd
}

impl Snapshot {
    fn names_us(&self, preload: &[u8]) -> bool {
        preload_entries(preload)
            .any(|e| e == self.self_path || self.self_entries.iter().any(|s| s == e))
    }
}

/// An environment with the tracing variables put back; keeps the strings the
/// pointer array refers to alive.
pub struct Repaired {
    _strings: Vec<Vec<u8>>,
    ptrs: Vec<*const c_char>,
}

impl Repaired {
    pub fn as_ptr(&self) -> *const *const c_char {
        self.ptrs.as_ptr()
    }
}

fn entry(name: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut s = Vec::with_capacity(name.len() + 2 + parts.iter().map(|p| p.len()).sum::<usize>());
    s.extend_from_slice(name.as_bytes());
    s.push(b'=');
    for p in parts {
        s.extend_from_slice(p);
    }
    s.push(0);
    s
}

/// `None` when `envp` already carries the tracing (the common case, no
/// allocation) or when there is no tracing to carry; otherwise a copy of
/// `envp` with our library first in `LD_PRELOAD` (other preloaded libraries
/// kept) and `ROAR_SOCKET`/`ROAR_JOB` restored.
///
/// # Safety
/// `envp` as for [`entries`].
pub unsafe fn repair(envp: *const *const c_char) -> Option<Repaired> {
    let snap = get()?;
    let socket = snap.socket.as_deref()?;
    let (mut has_socket, mut has_job, mut preload) = (false, false, None);
    // SAFETY: forwarded contract.
    for e in unsafe { entries(envp) } {
        if value(e, names::SOCKET).is_some() {
            has_socket = true;
        } else if value(e, names::JOB).is_some() {
            has_job = true;
        } else if let Some(v) = value(e, names::PRELOAD) {
            preload = Some(v);
        }
    }
    let preload_ok = snap.self_path.is_empty() || preload.is_some_and(|v| snap.names_us(v));
    let job_ok = has_job || snap.job.is_empty();
    if preload_ok && has_socket && job_ok {
        return None;
    }

    let mut strings = Vec::new();
    if !preload_ok {
        strings.push(match preload.filter(|v| !v.is_empty()) {
            Some(old) => entry(names::PRELOAD, &[&snap.self_path, b":", old]),
            None => entry(names::PRELOAD, &[&snap.self_path]),
        });
    }
    if !has_socket {
        strings.push(entry(names::SOCKET, &[socket]));
    }
    if !job_ok {
        strings.push(entry(names::JOB, &[&snap.job]));
    }
    let mut ptrs: Vec<*const c_char> = Vec::new();
    if !envp.is_null() {
        let mut i = 0;
        loop {
            // SAFETY: walking the NULL-terminated array up to its NULL.
            let p = unsafe { *envp.add(i) };
            if p.is_null() {
                break;
            }
            i += 1;
            // SAFETY: non-NULL entries are NUL-terminated strings.
            let e = unsafe { CStr::from_ptr(p) }.to_bytes();
            if !preload_ok && value(e, names::PRELOAD).is_some() {
                continue;
            }
            ptrs.push(p);
        }
    }
    ptrs.extend(strings.iter().map(|s| s.as_ptr().cast::<c_char>()));
    ptrs.push(std::ptr::null());
    Some(Repaired {
        _strings: strings,
        ptrs,
    })
}
