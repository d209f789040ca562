//! The single SQLite writer: the only connection that writes lineage. Jobs
//! arrive over a channel and each is committed in one transaction, so a
//! collector serving several jobs never has two writers racing for the lock.

use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Sender};

use crate::store::{Job, NewJob, Store};

type Request = (NewJob, Sender<Result<Job, String>>);

pub struct Writer {
    tx: Option<Sender<Request>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// `db` names the database in error messages.
    pub fn start(mut store: Store, db: String) -> Writer {
        let (tx, rx) = bounded::<Request>(4);
        let thread = std::thread::spawn(move || {
            for (job, reply) in rx {
                let recorded = store
                    .record_job(&job)
                    .map_err(|e| format!("cannot write the job to {db}: {e}"));
                let _ = reply.send(recorded);
            }
        });
        Writer {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    /// Stores `job` and waits until it is committed.
    pub fn record(&self, job: NewJob) -> Result<Job, String> {
        let (reply_tx, reply_rx) = bounded(1);
        let gone = || "the database writer stopped".to_string();
        self.tx
            .as_ref()
            .ok_or_else(gone)?
            .send((job, reply_tx))
            .map_err(|_| gone())?;
        reply_rx.recv().map_err(|_| gone())?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
