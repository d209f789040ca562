//! The original libc functions behind every hook, on macOS: the plain
//! symbols, one line each, written as the SDK declares them.
//!
//! Why not `dlsym(RTLD_NEXT)` as on Linux: dyld's interposing leaves the
//! references of the library that carries the `__interpose` tuples bound to
//! the originals, so these declarations already reach libSystem's functions;
//! dyld binds them when it loads the library, before any hook can run (a hook
//! may run before our constructor, from libSystem's own initialisers), where
//! a `dlsym` would run inside the loader's early calls; and a function
//! missing from libSystem fails the link instead of failing at run time.
//! The accessors keep Linux's shape (`None` would mean "no such function")
//! so the hooks are the same on both systems.

use libc::{c_char, c_int, c_uint, mode_t, off_t, pid_t, FILE};
use libc::{posix_spawn_file_actions_t as SpawnActions, posix_spawnattr_t as SpawnAttr};

macro_rules! originals {
    ($($(#[$attr:meta])* fn $name:ident $params:tt -> $ret:ty;)*) => {
        mod sym {
            use super::*;
            extern "C" {
                $( $(#[$attr])* pub fn $name $params -> $ret; )*
            }
        }

        $(
            #[inline]
            pub fn $name() -> Option<unsafe extern "C" fn $params -> $ret> {
                Some(sym::$name)
            }
        )*
    };
}

originals! {
    fn open(path: *const c_char, flags: c_int, ...) -> c_int;
    fn openat(dirfd: c_int, path: *const c_char, flags: c_int, ...) -> c_int;
    fn creat(path: *const c_char, mode: mode_t) -> c_int;
    fn fopen(path: *const c_char, mode: *const c_char) -> *mut FILE;
    /// `fopen` as <stdio.h> names it for programs built with
    /// `_DARWIN_C_SOURCE` (CPython among them): no limit on the fd number.
    #[link_name = "fopen$DARWIN_EXTSN"]
    fn fopen_extsn(path: *const c_char, mode: *const c_char) -> *mut FILE;
    fn freopen(path: *const c_char, mode: *const c_char, stream: *mut FILE) -> *mut FILE;
    fn rename(from: *const c_char, to: *const c_char) -> c_int;
    fn renameat(fromfd: c_int, from: *const c_char, tofd: c_int, to: *const c_char) -> c_int;
    fn renamex_np(from: *const c_char, to: *const c_char, flags: c_uint) -> c_int;
    fn renameatx_np(fromfd: c_int, from: *const c_char, tofd: c_int, to: *const c_char, flags: c_uint) -> c_int;
    fn unlink(path: *const c_char) -> c_int;
    fn unlinkat(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int;
    fn rmdir(path: *const c_char) -> c_int;
    fn truncate(path: *const c_char, length: off_t) -> c_int;
    fn mkstemp(tmpl: *mut c_char) -> c_int;
    fn mkostemp(tmpl: *mut c_char, flags: c_int) -> c_int;
    fn mkstemps(tmpl: *mut c_char, suffixlen: c_int) -> c_int;
    fn mkostemps(tmpl: *mut c_char, suffixlen: c_int, flags: c_int) -> c_int;
    fn link(from: *const c_char, to: *const c_char) -> c_int;
    fn linkat(fromfd: c_int, from: *const c_char, tofd: c_int, to: *const c_char, flags: c_int) -> c_int;
    fn symlink(target: *const c_char, to: *const c_char) -> c_int;
    fn symlinkat(target: *const c_char, tofd: c_int, to: *const c_char) -> c_int;
    fn chdir(path: *const c_char) -> c_int;
    fn fchdir(fd: c_int) -> c_int;
    fn close(fd: c_int) -> c_int;
    fn fclose(stream: *mut FILE) -> c_int;
    fn dup2(oldfd: c_int, newfd: c_int) -> c_int;
    fn fork() -> pid_t;
    fn execve(path: *const c_char, argv: *const *const c_char, envp: *const *const c_char) -> c_int;
    fn execvp(file: *const c_char, argv: *const *const c_char) -> c_int;
    fn posix_spawn(pid: *mut pid_t, path: *const c_char, actions: *const SpawnActions, attr: *const SpawnAttr, argv: *const *const c_char, envp: *const *const c_char) -> c_int;
    fn posix_spawnp(pid: *mut pid_t, file: *const c_char, actions: *const SpawnActions, attr: *const SpawnAttr, argv: *const *const c_char, envp: *const *const c_char) -> c_int;
    fn exit(status: c_int) -> !;
    fn _exit(status: c_int) -> !;
}
