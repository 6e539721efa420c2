//! The hand-off between the receivers and the run worker. Receivers push accepted
//! deliveries and wake the worker; the worker takes everything pending at once, so any
//! number of pushes that arrive during a run become one next run of the newest head.

use std::sync::{Mutex, PoisonError};

use tokio::sync::Notify;

use super::observe::Receiver;

/// An accepted delivery waiting for a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    pub receiver: Receiver,
    pub delivery: String,
}

/// Pending deliveries and the worker's wake-up.
#[derive(Debug, Default)]
pub struct Queue {
    pending: Mutex<Vec<Trigger>>,
    wake: Notify,
}

impl Queue {
    pub fn push(&self, trigger: Trigger) {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(trigger);
        // One stored permit however many pushes: the worker takes them all at once.
        self.wake.notify_one();
    }

    /// Everything pending, oldest first; empty when nothing is.
    pub fn take(&self) -> Vec<Trigger> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub fn len(&self) -> usize {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Completes after the next `push` (at once if one came since the last wait).
    pub async fn woken(&self) {
        self.wake.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pushes_while_busy_are_taken_together() {
        let queue = Queue::default();
        for n in 0..5 {
            queue.push(Trigger {
                receiver: Receiver::Github,
                delivery: format!("d{n}"),
            });
        }
        queue.woken().await;
        assert_eq!(queue.take().len(), 5);
        assert!(queue.is_empty());
    }
}
