//! Waiting for a condition, the one way tests synchronise: poll it with a deadline. A
//! fixed sleep is a guess that fails on a slow machine, and a sleep before asserting
//! that something did not happen passes when it is only late; wait instead for a
//! positive witness that the awaited event is over, then assert. The error names what
//! was awaited and for how long.

use std::fmt;
use std::time::{Duration, Instant};

/// How often a condition is polled.
const INTERVAL: Duration = Duration::from_millis(20);

/// A condition that did not hold before its deadline.
#[derive(Clone, PartialEq, Eq)]
pub struct TimedOut {
    what: String,
    after: Duration,
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timed out after {:?} waiting for {}",
            self.after, self.what
        )
    }
}

// `unwrap()` prints the Debug form: make it the sentence, not a struct dump.
impl fmt::Debug for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for TimedOut {}

/// Polls `cond` until it holds, for at most `within`; `what` names the condition in
/// the error. `cond` runs at least once, and once more at the deadline.
pub fn wait_until(
    within: Duration,
    what: &str,
    mut cond: impl FnMut() -> bool,
) -> Result<(), TimedOut> {
    wait_for(within, what, || cond().then_some(()))
}

/// Like `wait_until`, for a condition that yields a value once it holds.
pub fn wait_for<T>(
    within: Duration,
    what: &str,
    mut probe: impl FnMut() -> Option<T>,
) -> Result<T, TimedOut> {
    let started = Instant::now();
    loop {
        let last_chance = started.elapsed() >= within;
        if let Some(value) = probe() {
            return Ok(value);
        }
        if last_chance {
            return Err(timed_out(what, started));
        }
        std::thread::sleep(INTERVAL.min(within.saturating_sub(started.elapsed())));
    }
}

/// `wait_until` inside a tokio test: sleeps without blocking the runtime, so the
/// tasks that make the condition true keep running.
pub async fn wait_until_async(
    within: Duration,
    what: &str,
    mut cond: impl FnMut() -> bool,
) -> Result<(), TimedOut> {
    let started = Instant::now();
    loop {
        let last_chance = started.elapsed() >= within;
        if cond() {
            return Ok(());
        }
        if last_chance {
            return Err(timed_out(what, started));
        }
        tokio::time::sleep(INTERVAL.min(within.saturating_sub(started.elapsed()))).await;
    }
}

fn timed_out(what: &str, started: Instant) -> TimedOut {
    TimedOut {
        what: what.to_string(),
        after: started.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_that_never_holds_times_out_naming_it() {
        let started = Instant::now();
        let mut polls = 0;
        let err = wait_until(Duration::from_millis(100), "the moon to turn blue", || {
            polls += 1;
            false
        })
        .unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(polls >= 2, "polled {polls} times");
        let text = format!("{err:?}");
        assert!(text.starts_with("timed out after "), "{text}");
        assert!(
            text.ends_with(" waiting for the moon to turn blue"),
            "{text}"
        );
    }

    #[test]
    fn a_condition_that_comes_true_returns_its_value() {
        let mut n = 0;
        let got = wait_for(Duration::from_secs(5), "the third poll", || {
            n += 1;
            (n == 3).then_some(n * 10)
        });
        assert_eq!(got, Ok(30));
    }

    #[tokio::test]
    async fn the_async_wait_lets_other_tasks_run() {
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let setter = flag.clone();
        // On the test's one-thread runtime the task runs only if the wait yields.
        let task = tokio::spawn(async move {
            setter.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        wait_until_async(Duration::from_secs(5), "the flag", || {
            flag.load(std::sync::atomic::Ordering::SeqCst)
        })
        .await
        .unwrap();
        task.await.unwrap();
    }
}
