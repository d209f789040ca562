/*
 * The libc symbols libroar.so interposes. Every function here only forwards to
 * a Rust entry point (src/hooks/); variadic arguments are read here,
 * because stable Rust cannot define C-variadic functions. Nothing else lives
 * in this file: no logic, no state.
 *
 * The Rust entry points are declared hidden so they stay out of the dynamic
 * symbol table; exports.map lists the only names the library exports.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#undef _FORTIFY_SOURCE

#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))
#define RUST extern __attribute__((visibility("hidden")))

/* glibc's own test for "the mode argument is present". */
#ifdef __OPEN_NEEDS_MODE
#define NEEDS_MODE(flags) __OPEN_NEEDS_MODE(flags)
#elif defined(O_TMPFILE)
#define NEEDS_MODE(flags) (((flags) & O_CREAT) != 0 || ((flags) & O_TMPFILE) == O_TMPFILE)
#else
#define NEEDS_MODE(flags) (((flags) & O_CREAT) != 0)
#endif

#define READ_MODE(last, flags, mode)          \
    do {                                      \
        if (NEEDS_MODE(flags)) {              \
            va_list ap;                       \
            va_start(ap, last);               \
            mode = va_arg(ap, mode_t);        \
            va_end(ap);                       \
        }                                     \
    } while (0)

extern char **environ;

typedef int (*main_fn)(int, char **, char **);

/* ---- Rust entry points ---------------------------------------------------- */

RUST void roar_init(int argc, char **argv, char **envp);
RUST void roar_fini(void);

RUST int roar_open(const char *path, int flags, mode_t mode);
RUST int roar_open64(const char *path, int flags, mode_t mode);
RUST int roar_openat(int dirfd, const char *path, int flags, mode_t mode);
RUST int roar_openat64(int dirfd, const char *path, int flags, mode_t mode);
RUST int roar_creat(const char *path, mode_t mode);
RUST int roar_creat64(const char *path, mode_t mode);
RUST int roar_open_2(const char *path, int flags);
RUST int roar_open64_2(const char *path, int flags);
RUST int roar_openat_2(int dirfd, const char *path, int flags);
RUST int roar_openat64_2(int dirfd, const char *path, int flags);
RUST FILE *roar_fopen(const char *path, const char *mode);
RUST FILE *roar_fopen64(const char *path, const char *mode);
RUST FILE *roar_freopen(const char *path, const char *mode, FILE *stream);
RUST FILE *roar_freopen64(const char *path, const char *mode, FILE *stream);

RUST int roar_rename(const char *from, const char *to);
RUST int roar_renameat(int fromfd, const char *from, int tofd, const char *to);
RUST int roar_renameat2(int fromfd, const char *from, int tofd, const char *to,
                        unsigned int flags);
RUST int roar_unlink(const char *path);
RUST int roar_unlinkat(int dirfd, const char *path, int flags);
RUST int roar_rmdir(const char *path);
RUST int roar_truncate(const char *path, off_t length);
RUST int roar_truncate64(const char *path, off64_t length);
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
RUST int roar_close_range(unsigned int first, unsigned int last, int flags);
RUST void roar_closefrom(int lowfd);
RUST int roar_dup2(int oldfd, int newfd);
RUST int roar_dup3(int oldfd, int newfd, int flags);

RUST pid_t roar_vfork(void);
RUST pid_t roar__Fork(void);
RUST int roar_system(const char *command);
RUST FILE *roar_popen(const char *command, const char *mode);
RUST int roar_execve(const char *path, char *const argv[], char *const envp[]);
RUST int roar_execvpe(const char *file, char *const argv[], char *const envp[]);
RUST int roar_fexecve(int fd, char *const argv[], char *const envp[]);
RUST int roar_execveat(int dirfd, const char *path, char *const argv[], char *const envp[],
                       int flags);
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
RUST int roar_libc_start_main(main_fn main, int argc, char **argv, void (*init)(void),
                              void (*fini)(void), void (*rtld_fini)(void),
                              void *stack_end);

/* ---- load and unload ------------------------------------------------------ */

/* glibc passes argc, argv and envp to ELF constructors. */
__attribute__((constructor)) static void roar_on_load(int argc, char **argv, char **envp)
{
    roar_init(argc, argv, envp);
}

__attribute__((destructor)) static void roar_on_unload(void)
{
    roar_fini();
}

/* ---- open family ---------------------------------------------------------- */

EXPORT int open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    READ_MODE(flags, flags, mode);
    return roar_open(path, flags, mode);
}

EXPORT int open64(const char *path, int flags, ...)
{
    mode_t mode = 0;
    READ_MODE(flags, flags, mode);
    return roar_open64(path, flags, mode);
}

EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
    mode_t mode = 0;
    READ_MODE(flags, flags, mode);
    return roar_openat(dirfd, path, flags, mode);
}

EXPORT int openat64(int dirfd, const char *path, int flags, ...)
{
    mode_t mode = 0;
    READ_MODE(flags, flags, mode);
    return roar_openat64(dirfd, path, flags, mode);
}

EXPORT int creat(const char *path, mode_t mode) { return roar_creat(path, mode); }
EXPORT int creat64(const char *path, mode_t mode) { return roar_creat64(path, mode); }

/* _FORTIFY_SOURCE variants: no mode argument (O_CREAT is refused by them). */
EXPORT int __open_2(const char *path, int flags) { return roar_open_2(path, flags); }
EXPORT int __open64_2(const char *path, int flags) { return roar_open64_2(path, flags); }
EXPORT int __openat_2(int dirfd, const char *path, int flags)
{
    return roar_openat_2(dirfd, path, flags);
}
EXPORT int __openat64_2(int dirfd, const char *path, int flags)
{
    return roar_openat64_2(dirfd, path, flags);
}

EXPORT FILE *fopen(const char *path, const char *mode) { return roar_fopen(path, mode); }
EXPORT FILE *fopen64(const char *path, const char *mode) { return roar_fopen64(path, mode); }
EXPORT FILE *freopen(const char *path, const char *mode, FILE *stream)
{
    return roar_freopen(path, mode, stream);
}
EXPORT FILE *freopen64(const char *path, const char *mode, FILE *stream)
{
    return roar_freopen64(path, mode, stream);
}

/* ---- renames, removals, links, cwd --------------------------------------- */

EXPORT int rename(const char *from, const char *to) { return roar_rename(from, to); }
EXPORT int renameat(int fromfd, const char *from, int tofd, const char *to)
{
    return roar_renameat(fromfd, from, tofd, to);
}
EXPORT int renameat2(int fromfd, const char *from, int tofd, const char *to, unsigned int flags)
{
    return roar_renameat2(fromfd, from, tofd, to, flags);
}
EXPORT int unlink(const char *path) { return roar_unlink(path); }
EXPORT int unlinkat(int dirfd, const char *path, int flags)
{
    return roar_unlinkat(dirfd, path, flags);
}
EXPORT int rmdir(const char *path) { return roar_rmdir(path); }
EXPORT int truncate(const char *path, off_t length) { return roar_truncate(path, length); }
EXPORT int truncate64(const char *path, off64_t length) { return roar_truncate64(path, length); }
/* glibc opens the temporary file internally: these are the only way to see it. */
EXPORT int mkstemp(char *tmpl) { return roar_mkstemp(tmpl); }
EXPORT int mkstemp64(char *tmpl) { return roar_mkstemp(tmpl); }
EXPORT int mkostemp(char *tmpl, int flags) { return roar_mkostemp(tmpl, flags); }
EXPORT int mkostemp64(char *tmpl, int flags) { return roar_mkostemp(tmpl, flags); }
EXPORT int mkstemps(char *tmpl, int suffixlen) { return roar_mkstemps(tmpl, suffixlen); }
EXPORT int mkstemps64(char *tmpl, int suffixlen) { return roar_mkstemps(tmpl, suffixlen); }
EXPORT int mkostemps(char *tmpl, int suffixlen, int flags) {
    return roar_mkostemps(tmpl, suffixlen, flags);
}
EXPORT int mkostemps64(char *tmpl, int suffixlen, int flags) {
    return roar_mkostemps(tmpl, suffixlen, flags);
}
EXPORT int link(const char *from, const char *to) { return roar_link(from, to); }
EXPORT int linkat(int fromfd, const char *from, int tofd, const char *to, int flags)
{
    return roar_linkat(fromfd, from, tofd, to, flags);
}
EXPORT int symlink(const char *target, const char *to) { return roar_symlink(target, to); }
EXPORT int symlinkat(const char *target, int tofd, const char *to)
{
    return roar_symlinkat(target, tofd, to);
}
EXPORT int chdir(const char *path) { return roar_chdir(path); }
EXPORT int fchdir(int fd) { return roar_fchdir(fd); }

/* ---- keeping the shim's own socket alive ---------------------------------- */

EXPORT int close(int fd) { return roar_close(fd); }
EXPORT int fclose(FILE *fp) { return roar_fclose(fp); }
EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
    return roar_close_range(first, last, flags);
}
EXPORT void closefrom(int lowfd) { roar_closefrom(lowfd); }
EXPORT int dup2(int oldfd, int newfd) { return roar_dup2(oldfd, newfd); }
EXPORT int dup3(int oldfd, int newfd, int flags) { return roar_dup3(oldfd, newfd, flags); }

/* ---- processes ------------------------------------------------------------ */

/*
 * vfork stays vfork on x86-64 (see src/vfork.rs). A C wrapper cannot call
 * it: the child would return through, and clobber, the wrapper's frame,
 * which the parent then returns through. So vfork is assembly that marks
 * the thread, makes the system call itself with the return address kept in
 * a register (as glibc's own vfork does), returns at once in the child, and
 * in the parent (or on failure) lets roar_vfork_leave clear the mark and set
 * errno. The mark is cleared only there, after the call returned: a signal
 * handler running hooks before the call cannot clear it too early.
 */
RUST void roar_vfork_enter(void);
RUST long roar_vfork_leave(long ret);
#if defined(__x86_64__)
#include <sys/syscall.h>
_Static_assert(SYS_vfork == 58, "the assembly below names vfork's number");
__asm__(".pushsection .text\n"
        ".hidden roar_vfork_enter\n"
        ".hidden roar_vfork_leave\n"
        ".hidden roar_vfork\n"
        ".globl vfork\n"
        ".type vfork, @function\n"
        "vfork:\n"
        "    .cfi_startproc\n"
        "    endbr64\n"
        "    subq $8, %rsp\n" /* the call below needs a 16-byte aligned stack */
        "    .cfi_adjust_cfa_offset 8\n"
        "    call roar_vfork_enter\n"
        "    addq $8, %rsp\n"
        "    .cfi_adjust_cfa_offset -8\n"
        /* The return address leaves the stack: the child may overwrite it. */
        "    popq %rdi\n"
        "    .cfi_adjust_cfa_offset -8\n"
        "    .cfi_register %rip, %rdi\n"
        "    movl $58, %eax\n" /* SYS_vfork */
        "    syscall\n"
        "    pushq %rdi\n"
        "    .cfi_adjust_cfa_offset 8\n"
        "    .cfi_rel_offset %rip, 0\n"
        "    testq %rax, %rax\n"
        "    jz 1f\n" /* the child: 0, at once, touching nothing */
        "    pushq %rax\n" /* aligns the stack for the call */
        "    .cfi_adjust_cfa_offset 8\n"
        "    movq %rax, %rdi\n"
        "    call roar_vfork_leave\n"
        "    addq $8, %rsp\n"
        "    .cfi_adjust_cfa_offset -8\n"
        "1:  ret\n"
        "    .cfi_endproc\n"
        ".size vfork, .-vfork\n"
        ".popsection\n");
#else
/* Elsewhere vfork becomes fork (the fork-based hook): the assembly above has
 * not been run on other processors yet. */
EXPORT pid_t vfork(void) { return roar_vfork(); }
#endif
/* glibc 2.34's fork without atfork handlers. */
EXPORT pid_t _Fork(void) { return roar__Fork(); }

/* glibc spawns these internally with the current environ. */
EXPORT int system(const char *command) { return roar_system(command); }
EXPORT FILE *popen(const char *command, const char *mode) { return roar_popen(command, mode); }

EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
    return roar_execve(path, argv, envp);
}
EXPORT int execv(const char *path, char *const argv[])
{
    return roar_execve(path, argv, environ);
}
EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
    return roar_execvpe(file, argv, envp);
}
EXPORT int execvp(const char *file, char *const argv[])
{
    return roar_execvpe(file, argv, environ);
}
EXPORT int execveat(int dirfd, const char *path, char *const argv[], char *const envp[],
                    int flags)
{
    return roar_execveat(dirfd, path, argv, envp, flags);
}

EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
    return roar_fexecve(fd, argv, envp);
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

EXPORT int execl(const char *path, const char *arg0, ...)
{
    COLLECT_ARGV(arg0, argv, ap);
    va_end(ap);
    return roar_execve(path, argv, environ);
}

EXPORT int execlp(const char *file, const char *arg0, ...)
{
    COLLECT_ARGV(arg0, argv, ap);
    va_end(ap);
    return roar_execvpe(file, argv, environ);
}

EXPORT int execle(const char *path, const char *arg0, ...)
{
    COLLECT_ARGV(arg0, argv, ap);
    char *const *envp = va_arg(ap, char *const *);
    va_end(ap);
    return roar_execve(path, argv, envp);
}

EXPORT int posix_spawn(pid_t *pid, const char *path,
                       const posix_spawn_file_actions_t *actions,
                       const posix_spawnattr_t *attr, char *const argv[],
                       char *const envp[])
{
    return roar_posix_spawn(pid, path, actions, attr, argv, envp);
}

EXPORT int posix_spawnp(pid_t *pid, const char *file,
                        const posix_spawn_file_actions_t *actions,
                        const posix_spawnattr_t *attr, char *const argv[],
                        char *const envp[])
{
    return roar_posix_spawnp(pid, file, actions, attr, argv, envp);
}

EXPORT void exit(int status) { roar_exit(status); }
EXPORT void _exit(int status) { roar__exit(status); }
EXPORT void _Exit(int status) { roar__exit(status); }

/* Wraps main so that a return from it is seen as an exit status. */
EXPORT int __libc_start_main(main_fn main, int argc, char **argv, void (*init)(void),
                             void (*fini)(void), void (*rtld_fini)(void), void *stack_end)
{
    return roar_libc_start_main(main, argc, argv, init, fini, rtld_fini, stack_end);
}
