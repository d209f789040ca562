//! roar's collector: receives the shim's events, assembles jobs, filters
//! noise, hashes files with BLAKE3 and persists lineage in SQLite.

mod assemble;
pub mod classify;
pub mod config;
pub mod daemon;
pub mod datasets;
pub mod filter;
pub mod git;
pub mod hash;
mod hashing;
mod intake;
mod intern;
pub mod labels;
mod pathnorm;
pub mod python;
pub mod reader;
pub mod server;
pub mod spool;
pub mod store;
pub mod trackers;
mod writer;
