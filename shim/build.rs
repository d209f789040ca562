//! Compiles the C half of the library into it whole: on Linux
//! `src/c/exports.c` (the exported libc symbols, forwarding to Rust), with the
//! dynamic symbol table restricted to the names in `src/c/exports.map`; on
//! macOS `src/c/interpose_macos.c` (dyld's interposing pairs).
//!
//! `ROAR_SHIM_NO_C=1` skips the C entirely. The library is then useless (no
//! hook is reachable); it exists for type-checking the Rust side for another
//! system where no C compiler or SDK for it is at hand (scripts/check-macos.sh
//! checks the macOS build from Linux, with no macOS SDK or clang there).

fn main() {
    println!("cargo:rerun-if-changed=src/c/exports.c");
    println!("cargo:rerun-if-changed=src/c/exports.map");
    println!("cargo:rerun-if-changed=src/c/interpose_macos.c");
    println!("cargo:rerun-if-env-changed=ROAR_SHIM_NO_C");

    if std::env::var_os("ROAR_SHIM_NO_C").is_some_and(|v| v == "1") {
        return;
    }
    match std::env::var("CARGO_CFG_TARGET_OS")
        .unwrap_or_default()
        .as_str()
    {
        "linux" => linux(),
        "macos" => macos(),
        _ => println!("cargo:warning=libroar's hooks are only built for Linux glibc and macOS"),
    }
}

fn linux() {
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

fn macos() {
    cc::Build::new()
        .file("src/c/interpose_macos.c")
        .flag("-fvisibility=hidden")
        .warnings(true)
        .extra_warnings(true)
        // Nothing in Rust references the interposing table or the
        // constructor: linked whole, or the linker would drop them.
        .link_lib_modifier("+whole-archive")
        .compile("roar_interpose");
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
