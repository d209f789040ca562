//! Names of every environment variable roar reads or sets.

/// Path of the collector's Unix socket; set by `roar run` for traced processes.
pub const SOCKET: &str = "ROAR_SOCKET";
/// Opaque token naming the job a traced process belongs to; inherited by children.
pub const JOB: &str = "ROAR_JOB";
/// Explicit path of the shim (`libroar.so`, `libroar.dylib` on macOS),
/// consulted by the CLI after its own search.
pub const SHIM: &str = "ROAR_SHIM";
/// `1` makes the shim explain on stderr why it is passive.
pub const VERBOSE: &str = "ROAR_VERBOSE";
/// The dynamic loader's preload variable on this platform.
#[cfg(target_os = "macos")]
pub const PRELOAD: &str = "DYLD_INSERT_LIBRARIES";
#[cfg(not(target_os = "macos"))]
pub const PRELOAD: &str = "LD_PRELOAD";
