//! The original libc functions behind every hook: one table, one line each.
//!
//! All are resolved once by [`resolve_all`] in the load-time constructor with
//! `dlsym(RTLD_NEXT)`, so no hook calls `dlsym` on its hot path (a lazy
//! `dlsym` can allocate and deadlock on the allocator's lock). A hook that runs
//! before the constructor (another library's constructor opening a file)
//! resolves its own entry on first use. `None` means libc has no such
//! function; the hook then fails with `ENOSYS`.

use std::sync::atomic::{AtomicUsize, Ordering};

use libc::{c_char, c_int, c_uint, c_void, mode_t, pid_t, FILE};
use libc::{posix_spawn_file_actions_t as SpawnActions, posix_spawnattr_t as SpawnAttr};

/// `main` as `__libc_start_main` receives it.
pub type MainFn = unsafe extern "C" fn(c_int, *mut *mut c_char, *mut *mut c_char) -> c_int;

const UNRESOLVED: usize = 0;
const MISSING: usize = 1;

fn lookup(slot: &AtomicUsize, name: &'static str) -> usize {
    debug_assert!(name.ends_with('\0'));
    // SAFETY: `name` is NUL-terminated; RTLD_NEXT searches the objects loaded
    // after this library, i.e. libc itself, never our own exports.
    let p = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr().cast()) } as usize;
    let v = if p == UNRESOLVED { MISSING } else { p };
    slot.store(v, Ordering::Relaxed);
    v
}

macro_rules! originals {
    ($($name:ident: $ty:ty;)*) => {
        mod slot {
            use std::sync::atomic::AtomicUsize;
            $(
                #[allow(non_upper_case_globals)]
                pub static $name: AtomicUsize = AtomicUsize::new(super::UNRESOLVED);
            )*
        }

        /// Resolves every original; called once from the constructor.
        pub fn resolve_all() {
            $( lookup(&slot::$name, concat!(stringify!($name), "\0")); )*
        }

        $(
            #[inline]
            #[allow(non_snake_case)]
            pub fn $name() -> Option<$ty> {
                let mut p = slot::$name.load(Ordering::Relaxed);
                if p == UNRESOLVED {
                    p = lookup(&slot::$name, concat!(stringify!($name), "\0"));
                }
                if p == MISSING {
                    return None;
                }
                // SAFETY: `p` is the address dlsym returned for the libc
                // function of this name, whose C prototype is `$ty`.
                Some(unsafe { std::mem::transmute::<usize, $ty>(p) })
            }
        )*
    };
}

originals! {
    open: unsafe extern "C" fn(*const c_char, c_int, ...) -> c_int;
    open64: unsafe extern "C" fn(*const c_char, c_int, ...) -> c_int;
    openat: unsafe extern "C" fn(c_int, *const c_char, c_int, ...) -> c_int;
    openat64: unsafe extern "C" fn(c_int, *const c_char, c_int, ...) -> c_int;
    creat: unsafe extern "C" fn(*const c_char, mode_t) -> c_int;
    creat64: unsafe extern "C" fn(*const c_char, mode_t) -> c_int;
    __open_2: unsafe extern "C" fn(*const c_char, c_int) -> c_int;
    __open64_2: unsafe extern "C" fn(*const c_char, c_int) -> c_int;
    __openat_2: unsafe extern "C" fn(c_int, *const c_char, c_int) -> c_int;
    __openat64_2: unsafe extern "C" fn(c_int, *const c_char, c_int) -> c_int;
    fopen: unsafe extern "C" fn(*const c_char, *const c_char) -> *mut FILE;
    fopen64: unsafe extern "C" fn(*const c_char, *const c_char) -> *mut FILE;
    freopen: unsafe extern "C" fn(*const c_char, *const c_char, *mut FILE) -> *mut FILE;
    freopen64: unsafe extern "C" fn(*const c_char, *const c_char, *mut FILE) -> *mut FILE;
    rename: unsafe extern "C" fn(*const c_char, *const c_char) -> c_int;
    renameat: unsafe extern "C" fn(c_int, *const c_char, c_int, *const c_char) -> c_int;
    renameat2: unsafe extern "C" fn(c_int, *const c_char, c_int, *const c_char, c_uint) -> c_int;
    unlink: unsafe extern "C" fn(*const c_char) -> c_int;
    unlinkat: unsafe extern "C" fn(c_int, *const c_char, c_int) -> c_int;
    rmdir: unsafe extern "C" fn(*const c_char) -> c_int;
    truncate: unsafe extern "C" fn(*const c_char, libc::off_t) -> c_int;
    truncate64: unsafe extern "C" fn(*const c_char, libc::off64_t) -> c_int;
    mkstemp: unsafe extern "C" fn(*mut c_char) -> c_int;
    mkostemp: unsafe extern "C" fn(*mut c_char, c_int) -> c_int;
    mkstemps: unsafe extern "C" fn(*mut c_char, c_int) -> c_int;
    mkostemps: unsafe extern "C" fn(*mut c_char, c_int, c_int) -> c_int;
    link: unsafe extern "C" fn(*const c_char, *const c_char) -> c_int;
    linkat: unsafe extern "C" fn(c_int, *const c_char, c_int, *const c_char, c_int) -> c_int;
    symlink: unsafe extern "C" fn(*const c_char, *const c_char) -> c_int;
    symlinkat: unsafe extern "C" fn(*const c_char, c_int, *const c_char) -> c_int;
    chdir: unsafe extern "C" fn(*const c_char) -> c_int;
    fchdir: unsafe extern "C" fn(c_int) -> c_int;
    close: unsafe extern "C" fn(c_int) -> c_int;
    fclose: unsafe extern "C" fn(*mut FILE) -> c_int;
    close_range: unsafe extern "C" fn(c_uint, c_uint, c_int) -> c_int;
    closefrom: unsafe extern "C" fn(c_int);
    dup2: unsafe extern "C" fn(c_int, c_int) -> c_int;
    dup3: unsafe extern "C" fn(c_int, c_int, c_int) -> c_int;
    fork: unsafe extern "C" fn() -> pid_t;
    _Fork: unsafe extern "C" fn() -> pid_t;
    system: unsafe extern "C" fn(*const c_char) -> c_int;
    popen: unsafe extern "C" fn(*const c_char, *const c_char) -> *mut FILE;
    execve: unsafe extern "C" fn(*const c_char, *const *const c_char, *const *const c_char) -> c_int;
    execvpe: unsafe extern "C" fn(*const c_char, *const *const c_char, *const *const c_char) -> c_int;
    fexecve: unsafe extern "C" fn(c_int, *const *const c_char, *const *const c_char) -> c_int;
    execveat: unsafe extern "C" fn(c_int, *const c_char, *const *const c_char, *const *const c_char, c_int) -> c_int;
    posix_spawn: unsafe extern "C" fn(*mut pid_t, *const c_char, *const SpawnActions, *const SpawnAttr, *const *const c_char, *const *const c_char) -> c_int;
    posix_spawnp: unsafe extern "C" fn(*mut pid_t, *const c_char, *const SpawnActions, *const SpawnAttr, *const *const c_char, *const *const c_char) -> c_int;
    exit: unsafe extern "C" fn(c_int) -> !;
    _exit: unsafe extern "C" fn(c_int) -> !;
    __libc_start_main: unsafe extern "C" fn(MainFn, c_int, *mut *mut c_char, *mut c_void, *mut c_void, *mut c_void, *mut c_void) -> c_int;
}
