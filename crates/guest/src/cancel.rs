//! Interrupts: one process-wide flag that a program's SIGINT/SIGTERM handler raises
//! ([`flag`], async-signal-safe: a single atomic store), and that long waits poll.
//!
//! Only commands marked [`crate::Command::cancellable`] (a traffic tool, a wait for a VM) are
//! ended when it is raised: their process group is killed, and the run returns
//! [`crate::Error::Cancelled`]. Everything else still runs, so that the clean-up after an
//! interrupt (links brought back up, the plan put back) can use the same command seam.
//!
//! ```
//! assert!(!guest::cancel::requested());
//! // In a signal handler: guest::cancel::request();
//! assert!(guest::cancel::sleep(std::time::Duration::from_millis(1)));
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

static REQUESTED: LazyLock<Arc<AtomicBool>> = LazyLock::new(|| Arc::new(AtomicBool::new(false)));

/// The flag itself, for a signal handler to raise (`signal_hook::flag::register(SIGINT,
/// guest::cancel::flag())`: a single atomic store, async-signal-safe).
pub fn flag() -> Arc<AtomicBool> {
    Arc::clone(&REQUESTED)
}

/// Raise the flag (a program that wants lab to stop).
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Whether an interrupt was requested.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Lower the flag again (a program that handled the interrupt and goes on).
pub fn reset() {
    REQUESTED.store(false, Ordering::SeqCst);
}

/// Sleep for `d`, waking early when an interrupt is requested; `true` if the whole time
/// passed.
pub fn sleep(d: Duration) -> bool {
    let end = Instant::now() + d;
    loop {
        if requested() {
            return false;
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(20)));
    }
}
