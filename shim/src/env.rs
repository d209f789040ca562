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

/// What an environment lacks of the tracing; borrows its `LD_PRELOAD`.
pub struct Lacking<'e> {
    /// `LD_PRELOAD` must name us: `Some(old value)` to keep after us.
    preload: Option<Option<&'e [u8]>>,
    socket: bool,
    job: bool,
}

/// `None` when `envp` already carries the tracing (the common case, no
/// allocation) or when there is no tracing to carry.
///
/// # Safety
/// `envp` as for [`entries`].
pub unsafe fn lacking<'e>(envp: *const *const c_char) -> Option<Lacking<'e>> {
    let snap = get()?;
    snap.socket.as_deref()?;
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
    Some(Lacking {
        preload: (!preload_ok).then_some(preload.filter(|v| !v.is_empty())),
        socket: !has_socket,
        job: !job_ok,
    })
}

/// One entry to add: its name and the parts of its value.
type Addition<'a> = (&'static str, [&'a [u8]; 3]);

impl<'e> Lacking<'e> {
    /// The entries that put the tracing back: our library first in
    /// `LD_PRELOAD` (other preloaded libraries kept), `ROAR_SOCKET`,
    /// `ROAR_JOB`.
    fn additions<'a>(&'a self, snap: &'a Snapshot) -> impl Iterator<Item = Addition<'a>> {
        let socket = snap.socket.as_deref().unwrap_or_default();
        let preload = self.preload.map(|old| match old {
            Some(old) => (names::PRELOAD, [&snap.self_path[..], b":", old]),
            None => (names::PRELOAD, [&snap.self_path[..], b"", b""]),
        });
        let socket = self.socket.then_some((names::SOCKET, [socket, b"", b""]));
        let job = self.job.then_some((names::JOB, [&snap.job[..], b"", b""]));
        [preload, socket, job].into_iter().flatten()
    }

    /// Whether `entry` is replaced rather than kept.
    fn drops(&self, entry: &[u8]) -> bool {
        self.preload.is_some() && value(entry, names::PRELOAD).is_some()
    }
}

/// Calls `keep` with each entry of `envp` that stays, in order.
///
/// # Safety
/// `envp` as for [`entries`]; the pointers passed on live as long as it.
unsafe fn kept(envp: *const *const c_char, lacking: &Lacking, mut keep: impl FnMut(*const c_char)) {
    if envp.is_null() {
        return;
    }
    let mut i = 0;
    loop {
        // SAFETY: walking the NULL-terminated array up to its NULL.
        let p = unsafe { *envp.add(i) };
        if p.is_null() {
            return;
        }
        i += 1;
        // SAFETY: non-NULL entries are NUL-terminated strings.
        if !lacking.drops(unsafe { CStr::from_ptr(p) }.to_bytes()) {
            keep(p);
        }
    }
}

/// An environment with the tracing variables put back, on the heap; keeps
/// the strings the pointer array refers to alive.
pub struct Repaired {
    _strings: Vec<Vec<u8>>,
    ptrs: Vec<*const c_char>,
}

impl Repaired {
    pub fn as_ptr(&self) -> *const *const c_char {
        self.ptrs.as_ptr()
    }
}

fn entry((name, parts): Addition) -> Vec<u8> {
    let mut s = Vec::with_capacity(name.len() + 2 + parts.iter().map(|p| p.len()).sum::<usize>());
    s.extend_from_slice(name.as_bytes());
    s.push(b'=');
    for p in parts {
        s.extend_from_slice(p);
    }
    s.push(0);
    s
}

/// A copy of `envp` with what it lacks put back, on the heap.
///
/// # Safety
/// `envp` as for [`entries`], alive as long as the result.
pub unsafe fn repaired(envp: *const *const c_char, lacking: &Lacking) -> Option<Repaired> {
    let snap = get()?;
    let strings: Vec<Vec<u8>> = lacking.additions(snap).map(entry).collect();
    let mut ptrs: Vec<*const c_char> = Vec::new();
    // SAFETY: forwarded contract.
    unsafe { kept(envp, lacking, |p| ptrs.push(p)) };
    ptrs.extend(strings.iter().map(|s| s.as_ptr().cast::<c_char>()));
    ptrs.push(std::ptr::null());
    Some(Repaired {
        _strings: strings,
        ptrs,
    })
}

const ROOM_PTRS: usize = 512;
const ROOM_TEXT: usize = 3 * crate::paths::PATH_MAX;

/// Stack room for a repaired environment handed to an exec. A vfork child
/// must not leave heap memory behind when the exec succeeds: it would leak
/// in the parent, whose memory it is.
pub struct Room {
    ptrs: [*const c_char; ROOM_PTRS],
    text: [u8; ROOM_TEXT],
}

impl Room {
    pub fn new() -> Self {
        Room {
            ptrs: [std::ptr::null(); ROOM_PTRS],
            text: [0; ROOM_TEXT],
        }
    }
}

/// A repaired environment, in a [`Room`] or (too large for it) on the heap.
pub enum Rebuilt<'r> {
    InRoom(&'r Room),
    Heap(Repaired),
}

impl Rebuilt<'_> {
    pub fn as_ptr(&self) -> *const *const c_char {
        match self {
            Rebuilt::InRoom(room) => room.ptrs.as_ptr(),
            Rebuilt::Heap(r) => r.as_ptr(),
        }
    }
}

/// A copy of `envp` with what it lacks put back, in `room` when it fits,
/// else on the heap when `heap_ok`. (A vfork child passes false: what it
/// allocates and execs away from stays in its parent's heap. Its exec then
/// gets the environment as it was.)
///
/// # Safety
/// `envp` as for [`entries`], alive as long as the result.
pub unsafe fn rebuilt<'r>(
    envp: *const *const c_char,
    lacking: &Lacking,
    room: &'r mut Room,
    heap_ok: bool,
) -> Option<Rebuilt<'r>> {
    let snap = get()?;
    // Too large for the room.
    let on_heap = || {
        // SAFETY: forwarded contract.
        let heap = || unsafe { repaired(envp, lacking) };
        heap_ok.then(heap).flatten().map(Rebuilt::Heap)
    };
    let mut used = 0;
    let mut added = [std::ptr::null::<c_char>(); 3];
    let mut n_added = 0;
    for (name, parts) in lacking.additions(snap) {
        let start = used;
        for part in [name.as_bytes(), b"="]
            .into_iter()
            .chain(parts)
            .chain([&b"\0"[..]])
        {
            let Some(dst) = room.text.get_mut(used..used + part.len()) else {
                return on_heap();
            };
            dst.copy_from_slice(part);
            used += part.len();
        }
        added[n_added] = room.text[start..].as_ptr().cast();
        n_added += 1;
    }
    let mut n = 0;
    let mut fits = true;
    // SAFETY: forwarded contract.
    unsafe {
        kept(envp, lacking, |p| {
            match room.ptrs.get_mut(n) {
                Some(slot) => *slot = p,
                None => fits = false,
            }
            n += 1;
        })
    };
    // The added entries and the closing NULL (the room came zeroed).
    if !fits || n + n_added >= ROOM_PTRS {
        return on_heap();
    }
    room.ptrs[n..n + n_added].copy_from_slice(&added[..n_added]);
    Some(Rebuilt::InRoom(room))
}
