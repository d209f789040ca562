/*
 * macOS: the libc functions libroar.dylib replaces. dyld reads the
 * (replacement, original) pairs in the __DATA,__interpose section of a library
 * inserted with DYLD_INSERT_LIBRARIES and binds every other image's references
 * to each original to its replacement. References made from this library keep
 * the originals (two-level namespace): that is how the Rust side calls them
 * (src/platform/macos/real.rs).
 *
 * Most replacements are the Rust entry points themselves (src/hooks/), whose C
 * prototypes are the originals'. The functions defined here are the variadic
 * ones, which stable Rust cannot define: their variadic arguments are read
 * with va_arg, in this frame. On Apple arm64 variadic arguments are passed on
 * the stack, not in the registers where a fixed-argument declaration would
 * look for them. Nothing else lives in this file: no logic, no state.
 *
 * Only <stdarg.h>, <fcntl.h>, <stdio.h>, <unistd.h> and <spawn.h> are used;
 * the few prototypes they may lack are declared below as the SDK has them.
 * Every pair is checked at compile time to have the original's type.
 */
#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#define RUST extern __attribute__((visibility("hidden")))

/* <stdlib.h>'s, or declared by the headers above only at some feature levels. */
int mkstemp(char *tmpl);
int mkostemp(char *tmpl, int flags);
int mkstemps(char *tmpl, int suffixlen);
int mkostemps(char *tmpl, int suffixlen, int flags);
int renamex_np(const char *from, const char *to, unsigned int flags);
int renameatx_np(int fromfd, const char *from, int tofd, const char *to, unsigned int flags);
void exit(int status) __attribute__((noreturn));
void _Exit(int status) __attribute__((noreturn));
/* fopen as <stdio.h> names it for programs built with _DARWIN_C_SOURCE
 * (CPython among them): the same function under a second symbol. */
FILE *fopen_darwin_extsn(const char *path, const char *mode) __asm("_fopen$DARWIN_EXTSN");

/* ---- Rust entry points ---------------------------------------------------- */

RUST void roar_init(int argc, char **argv, char **envp);
RUST void roar_fini(void);

RUST int roar_open(const char *path, int flags, unsigned int mode);
RUST int roar_openat(int dirfd, const char *path, int flags, unsigned int mode);
RUST int roar_creat(const char *path, mode_t mode);
RUST FILE *roar_fopen(const char *path, const char *mode);
RUST FILE *roar_fopen_extsn(const char *path, const char *mode);
RUST FILE *roar_freopen(const char *path, const char *mode, FILE *stream);

RUST int roar_rename(const char *from, const char *to);
RUST int roar_renameat(int fromfd, const char *from, int tofd, const char *to);
RUST int roar_renamex_np(const char *from, const char *to, unsigned int flags);
RUST int roar_renameatx_np(int fromfd, const char *from, int tofd, const char *to,
                           unsigned int flags);
RUST int roar_unlink(const char *path);
RUST int roar_unlinkat(int dirfd, const char *path, int flags);
RUST int roar_rmdir(const char *path);
RUST int roar_truncate(const char *path, off_t length);
RUST int roar_mkstemp(char *tmpl);
RUST int roar_mkostemp(char *tmpl, int flags);
RUST int roar_mkstemps(char *tmpl, int suffixlen);
RUST int roar_mkostemps(char *tmpl, int suffixlen, int flags);
RUST int roar_link(const char *from, const char *to);
RUST int roar_linkat(int fromfd, const char *from, int tofd, const char *to, int flags);
RUST int roar_symlink(const char *target, const char *to);
RUST int roar_symlinkat(const char *target, int tofd, const char *to);
RUST int roar_chdir(const char *path);
RUST int roar_fchdir(int fd);

RUST int roar_close(int fd);
RUST int roar_fclose(FILE *fp);
RUST int roar_dup2(int oldfd, int newfd);

RUST pid_t roar_vfork(void);
RUST int roar_execve(const char *path, char *const argv[], char *const envp[]);
RUST int roar_execv(const char *path, char *const argv[]);
RUST int roar_execvp(const char *file, char *const argv[]);
RUST int roar_posix_spawn(pid_t *pid, const char *path,
                          const posix_spawn_file_actions_t *actions,
                          const posix_spawnattr_t *attr, char *const argv[],
                          char *const envp[]);
RUST int roar_posix_spawnp(pid_t *pid, const char *file,
                           const posix_spawn_file_actions_t *actions,
                           const posix_spawnattr_t *attr, char *const argv[],
                           char *const envp[]);
RUST __attribute__((noreturn)) void roar_exit(int status);
RUST __attribute__((noreturn)) void roar__exit(int status);

/* ---- load and unload ------------------------------------------------------ */

/* dyld passes argc, argv and envp (then apple[] and the program vars, unused
 * here) to initialisers, as glibc does. */
__attribute__((constructor)) static void roar_on_load(int argc, char **argv, char **envp)
{
    roar_init(argc, argv, envp);
}

__attribute__((destructor)) static void roar_on_unload(void)
{
    roar_fini();
}

/* ---- variadic replacements ------------------------------------------------ */

/* The mode argument is there only with O_CREAT (macOS has no O_TMPFILE).
 * mode_t is 16 bits here, so the caller passed it promoted to int. */
static int roar_mac_open(const char *path, int flags, ...)
{
    unsigned int mode = 0;
    if (flags & O_CREAT) {
        va_list ap;
        va_start(ap, flags);
        mode = (unsigned int)va_arg(ap, int);
        va_end(ap);
    }
    return roar_open(path, flags, mode);
}

static int roar_mac_openat(int dirfd, const char *path, int flags, ...)
{
    unsigned int mode = 0;
    if (flags & O_CREAT) {
        va_list ap;
        va_start(ap, flags);
        mode = (unsigned int)va_arg(ap, int);
        va_end(ap);
    }
    return roar_openat(dirfd, path, flags, mode);
}

/* Number of variadic char* arguments before the terminating NULL. */
static size_t count_args(va_list ap)
{
    size_t n = 0;
    while (va_arg(ap, const char *) != NULL)
        n++;
    return n;
}

/* The execl family: argv is built on the stack (a VLA), never on the heap. */
#define COLLECT_ARGV(arg0, argv, ap)                           \
    va_list ap;                                                \
    va_start(ap, arg0);                                        \
    va_list ap_count;                                          \
    va_copy(ap_count, ap);                                     \
    size_t argc_ = count_args(ap_count);                       \
    va_end(ap_count);                                          \
    char *argv[argc_ + 2];                                     \
    argv[0] = (char *)(arg0);                                  \
    for (size_t i_ = 1; i_ <= argc_ + 1; i_++)                 \
        argv[i_] = va_arg(ap, char *);

static int roar_mac_execl(const char *path, const char *arg0, ...)
{
    COLLECT_ARGV(arg0, argv, ap);
    va_end(ap);
    return roar_execv(path, argv);
}

static int roar_mac_execlp(const char *file, const char *arg0, ...)
{
    COLLECT_ARGV(arg0, argv, ap);
    va_end(ap);
    return roar_execvp(file, argv);
}

static int roar_mac_execle(const char *path, const char *arg0, ...)
{
    COLLECT_ARGV(arg0, argv, ap);
    char *const *envp = va_arg(ap, char *const *);
    va_end(ap);
    return roar_execve(path, argv, envp);
}

/* ---- the interposing table ------------------------------------------------ */

/* As <mach-o/dyld-interposing.h> lays a pair out; `used` keeps it through
 * dead-stripping, and the assertion refuses a replacement whose type is not
 * the original's. */
#define INTERPOSE(replacement, original)                                              \
    _Static_assert(__builtin_types_compatible_p(__typeof__(&(replacement)),          \
                                                __typeof__(&(original))),            \
                   #replacement " must have the type of " #original);                \
    __attribute__((used)) static struct {                                             \
        const void *replacement;                                                      \
        const void *original;                                                         \
    } roar_interpose_##original __attribute__((section("__DATA,__interpose"))) = {   \
        (const void *)(unsigned long)&(replacement),                                  \
        (const void *)(unsigned long)&(original),                                     \
    }

INTERPOSE(roar_mac_open, open);
INTERPOSE(roar_mac_openat, openat);
INTERPOSE(roar_creat, creat);
INTERPOSE(roar_fopen, fopen);
INTERPOSE(roar_fopen_extsn, fopen_darwin_extsn);
INTERPOSE(roar_freopen, freopen);

INTERPOSE(roar_rename, rename);
INTERPOSE(roar_renameat, renameat);
INTERPOSE(roar_renamex_np, renamex_np);
INTERPOSE(roar_renameatx_np, renameatx_np);
INTERPOSE(roar_unlink, unlink);
INTERPOSE(roar_unlinkat, unlinkat);
INTERPOSE(roar_rmdir, rmdir);
INTERPOSE(roar_truncate, truncate);
/* libc creates the file internally: these are the only way to see it. */
INTERPOSE(roar_mkstemp, mkstemp);
INTERPOSE(roar_mkostemp, mkostemp);
INTERPOSE(roar_mkstemps, mkstemps);
INTERPOSE(roar_mkostemps, mkostemps);
INTERPOSE(roar_link, link);
INTERPOSE(roar_linkat, linkat);
INTERPOSE(roar_symlink, symlink);
INTERPOSE(roar_symlinkat, symlinkat);
INTERPOSE(roar_chdir, chdir);
INTERPOSE(roar_fchdir, fchdir);

/* Keeping the shim's own socket alive. */
INTERPOSE(roar_close, close);
INTERPOSE(roar_fclose, fclose);
INTERPOSE(roar_dup2, dup2);

/* Processes. fork itself needs no replacement: the atfork handlers give the
 * child its own connection. vfork becomes fork. system() and popen() spawn
 * through posix_spawn, which is replaced. */
/* Deprecated in the SDK, still called by programs built against older ones. */
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wdeprecated-declarations"
INTERPOSE(roar_vfork, vfork);
#pragma clang diagnostic pop
INTERPOSE(roar_execve, execve);
INTERPOSE(roar_execv, execv);
INTERPOSE(roar_execvp, execvp);
INTERPOSE(roar_mac_execl, execl);
INTERPOSE(roar_mac_execlp, execlp);
INTERPOSE(roar_mac_execle, execle);
INTERPOSE(roar_posix_spawn, posix_spawn);
INTERPOSE(roar_posix_spawnp, posix_spawnp);
INTERPOSE(roar_exit, exit);
INTERPOSE(roar__exit, _exit);
INTERPOSE(roar__exit, _Exit);
