//! Registration state: what each GLaaS server accepted, so `roar register`
//! sends nothing twice and resumes where an interrupted run stopped.

use std::collections::HashSet;

use rusqlite::{params, OptionalExtension};

use super::{now_unix, Result, Store};

#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub client_session_id: String,
    pub remote_id: Option<String>,
    /// Set once the server finalized it: (lineage hash, web URL).
    pub finalized: Option<(String, Option<String>)>,
}

impl Store {
    pub fn registration(&self, server: &str, target: &str) -> Result<Option<Registration>> {
        self.conn
            .query_row(
                "SELECT client_session_id, remote_id, lineage_hash, url FROM registrations
                 WHERE server = ?1 AND target = ?2",
                params![server, target],
                |r| {
                    let hash: Option<String> = r.get(2)?;
                    let url: Option<String> = r.get(3)?;
                    Ok(Registration {
                        client_session_id: r.get(0)?,
                        remote_id: r.get(1)?,
                        finalized: hash.map(|h| (h, url)),
                    })
                },
            )
            .optional()
    }

    /// Starts (or restarts, after a finalized one) a registration.
    pub fn begin_registration(
        &self,
        server: &str,
        target: &str,
        client_session_id: &str,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO registrations (server, target, client_session_id) VALUES (?1, ?2, ?3)",
            params![server, target, client_session_id],
        )?;
        Ok(())
    }

    pub fn set_registration_remote_id(
        &self,
        server: &str,
        target: &str,
        remote_id: &str,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE registrations SET remote_id = ?3 WHERE server = ?1 AND target = ?2",
            params![server, target, remote_id],
        )?;
        Ok(())
    }

    pub fn finish_registration(
        &self,
        server: &str,
        target: &str,
        lineage_hash: &str,
        url: Option<&str>,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE registrations SET lineage_hash = ?3, url = ?4, finalized_at = ?5
             WHERE server = ?1 AND target = ?2",
            params![server, target, lineage_hash, url, now_unix()],
        )?;
        Ok(())
    }

    /// Which of `items` the server has already accepted.
    pub fn registered_items(&self, server: &str, items: &[String]) -> Result<HashSet<String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT 1 FROM registered_items WHERE server = ?1 AND item = ?2")?;
        let mut done = HashSet::new();
        for item in items {
            if stmt.exists(params![server, item])? {
                done.insert(item.clone());
            }
        }
        Ok(done)
    }

    /// Records items the server accepted, all at once.
    pub fn mark_registered(&mut self, server: &str, items: &[String]) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx
                .prepare("INSERT OR IGNORE INTO registered_items (server, item) VALUES (?1, ?2)")?;
            for item in items {
                stmt.execute(params![server, item])?;
            }
        }
        tx.commit()
    }
}
