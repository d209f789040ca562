//! One error type for the CLI: a message for one stderr line and an exit code.

use std::fmt;

#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

/// Exit code for usage errors and a missing project, as clap uses.
pub const USAGE: u8 = 2;

impl CliError {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        CliError {
            code,
            message: message.into(),
        }
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(USAGE, message)
    }
    pub fn failure(message: impl Into<String>) -> Self {
        Self::new(1, message)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<roar_collector::store::Error> for CliError {
    fn from(e: roar_collector::store::Error) -> Self {
        CliError::failure(format!("database error: {e}"))
    }
}

pub type Result<T> = std::result::Result<T, CliError>;
