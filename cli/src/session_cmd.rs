//! `roar reset` (start a new session) and `roar pop` (undo the active
//! session's last job).

use std::io::{BufRead, IsTerminal, Write};

use roar_collector::store::Store;

use crate::error::{CliError, Result};
use crate::human::{command, short_hash};
use crate::out::outln;

pub fn reset(store: &mut Store) -> Result<()> {
    let old = store.active_session()?;
    let new = store.new_session()?;
    match old {
        Some(old) => outln!(
            "new session {}; session {} stays queryable (`roar label set dag {}`, `roar show UID`)",
            short_hash(&new.hash),
            short_hash(&old.hash),
            short_hash(&old.hash)
        ),
        None => outln!("new session {}", short_hash(&new.hash)),
    }
    Ok(())
}

pub fn pop(store: &mut Store, yes: bool) -> Result<()> {
    let session = store
        .active_session()?
        .ok_or_else(|| CliError::usage("no jobs recorded yet: nothing to pop"))?;
    let job = store
        .session_jobs(session.id)?
        .pop()
        .ok_or_else(|| CliError::usage("the active session has no jobs: nothing to pop"))?;
    let what = format!(
        "@{} {}  ({})",
        job.step,
        command(&job.command),
        &job.uid[..8]
    );
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(CliError::usage(format!(
                "roar pop would remove {what}; pass -y to confirm"
            )));
        }
        eprint!("remove {what}? [y/N] ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            eprintln!("roar: nothing removed");
            return Ok(());
        }
    }
    store.delete_job(job.id)?;
    outln!("removed {what}");
    Ok(())
}
