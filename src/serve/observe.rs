//! What the daemon's working parts report as they go. The receivers and the run worker
//! call an [`Observer`]; `/metrics` implements it. Labels are fixed words (never a user
//! value), so no observer can be made to grow a label set without bound.

/// The receiver a delivery came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Receiver {
    Github,
    Gitlab,
    Generic,
}

impl Receiver {
    pub fn as_str(self) -> &'static str {
        match self {
            Receiver::Github => "github",
            Receiver::Gitlab => "gitlab",
            Receiver::Generic => "generic",
        }
    }
}

/// What became of one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryResult {
    /// Verified, for the deploy branch: a run was queued (or an already queued one will
    /// take the newest head).
    Accepted,
    /// Verified, but nothing to do: another branch, another event, a ping.
    Ignored,
    /// A delivery id already seen.
    Duplicate,
    /// Missing or wrong signature, token or timestamp.
    Unauthorized,
    /// Body over the cap.
    TooLarge,
    /// Verified but unreadable (not JSON, missing fields).
    BadRequest,
}

impl DeliveryResult {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryResult::Accepted => "accepted",
            DeliveryResult::Ignored => "ignored",
            DeliveryResult::Duplicate => "duplicate",
            DeliveryResult::Unauthorized => "unauthorized",
            DeliveryResult::TooLarge => "too_large",
            DeliveryResult::BadRequest => "bad_request",
        }
    }
}

/// A run the daemon finished (or gave up on).
#[derive(Debug, Clone)]
pub struct RunFinished {
    /// `plan`, `apply` or `audit`.
    pub kind: &'static str,
    /// The run's recorded status (`succeeded`, `failed`, `interrupted`, `refused`, ...).
    pub result: String,
    pub seconds: f64,
    /// Node count by outcome word (`unchanged`, `changed`, `failed`, `unreachable`,
    /// `skipped`).
    pub nodes_by_outcome: Vec<(String, u64)>,
    /// The commit the run deployed, by datacenter, for the datacenters it converged.
    pub deployed: Vec<(String, String)>,
}

/// Told about every delivery and every finished run. Implementations must be cheap
/// and must not block: they are called on the request path.
pub trait Observer: Send + Sync {
    fn delivery(&self, receiver: Receiver, result: DeliveryResult);
    fn run_finished(&self, run: &RunFinished);
}

/// Tells every observer it holds, in order (the daemon: its log, then its metrics).
pub struct Fanout(pub Vec<std::sync::Arc<dyn Observer>>);

impl Observer for Fanout {
    fn delivery(&self, receiver: Receiver, result: DeliveryResult) {
        for observer in &self.0 {
            observer.delivery(receiver, result);
        }
    }

    fn run_finished(&self, run: &RunFinished) {
        for observer in &self.0 {
            observer.run_finished(run);
        }
    }
}
