//! Passing signals sent to roar on to the traced command.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::iterator::exfiltrator::WithOrigin;
use signal_hook::iterator::SignalsInfo;
use signal_hook::low_level::siginfo::Cause;

const FORWARDED: [i32; 6] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2];

/// Catches the forwarded signals from now on, so roar outlives them and can
/// record the job. Call before starting the command.
pub struct Forwarder(SignalsInfo<WithOrigin>);

impl Forwarder {
    pub fn install() -> std::io::Result<Forwarder> {
        Ok(Forwarder(SignalsInfo::<WithOrigin>::new(FORWARDED)?))
    }

    /// Forwards every caught signal to `pid` on a background thread. Signals
    /// the kernel sent (Ctrl-C, hang-up) already reached the command, which
    /// shares roar's terminal and process group: they are not sent twice.
    pub fn forward_to(mut self, pid: u32) {
        std::thread::spawn(move || {
            for origin in self.0.forever() {
                if origin.cause == Cause::Kernel {
                    continue;
                }
                if let Ok(sig) = Signal::try_from(origin.signal) {
                    let _ = kill(Pid::from_raw(pid as i32), sig);
                }
            }
        });
    }
}
