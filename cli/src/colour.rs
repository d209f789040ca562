//! Colour on stderr: only on a terminal, never with `NO_COLOR` set (any
//! value, per no-color.org), and always with `CLICOLOR_FORCE` set to
//! something other than `0` (NO_COLOR still wins).

use std::io::IsTerminal;

fn set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0")
}

fn enabled() -> bool {
    if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        return false;
    }
    set("CLICOLOR_FORCE") || std::io::stderr().is_terminal()
}

fn paint(code: &str, text: &str) -> String {
    if enabled() {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// The `roar:` of an error line.
pub fn error_prefix() -> String {
    paint("1;31", "roar:")
}

/// The `roar:` of a success line.
pub fn ok_prefix() -> String {
    paint("1;32", "roar:")
}

/// The `roar:` of a warning line.
pub fn warn_prefix() -> String {
    paint("1;33", "roar:")
}
