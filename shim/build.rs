//! Compiles `src/c/exports.c` (the exported libc symbols, forwarding to Rust)
//! into the library whole, and restricts the dynamic symbol table to the names
//! in `src/c/exports.map`.

fn main() {
    println!("cargo:rerun-if-changed=src/c/exports.c");
    println!("cargo:rerun-if-changed=src/c/exports.map");

    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os != "linux" {
        println!("cargo:warning=libroar's preload hooks are only built for Linux glibc");
        return;
    }

    cc::Build::new()
        .file("src/c/exports.c")
        .flag("-fvisibility=hidden")
        .flag_if_supported("-U_FORTIFY_SOURCE")
        .warnings(true)
        .extra_warnings(true)
        // Nothing in Rust references the exports, so the archive must be
        // linked whole or the linker would drop them.
        .link_lib_modifier("+whole-archive")
        .compile("roar_exports");

    link_unwinder_statically();

    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={dir}/src/c/exports.map");
}

/// Links the unwinder (`libgcc_eh.a`) into the library so that it does not
/// need `libgcc_s.so.1`: loading that into every traced process (and its
/// CPU-feature constructor) costs ~0.1 ms per process. Falls back to the
/// shared unwinder when the compiler has no static one.
fn link_unwinder_statically() {
    let compiler = cc::Build::new().get_compiler();
    let Ok(out) = std::process::Command::new(compiler.path())
        .arg("-print-file-name=libgcc_eh.a")
        .output()
    else {
        return;
    };
    let path = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !path.is_absolute() || !path.exists() {
        return;
    }
    if let Some(dir) = path.parent() {
        println!("cargo:rustc-link-search=native={}", dir.display());
        println!("cargo:rustc-link-lib=static=gcc_eh");
    }
}
