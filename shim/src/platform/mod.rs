//! What differs between the platforms the shim runs on, one small module per
//! OS behind one set of names: where errno lives, how the shim's socket is
//! made safe, how an fd or the running program is named, where `environ` is,
//! which executables escape tracing. Everything else is shared.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::*;

#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "macos")]
pub use macos::*;
