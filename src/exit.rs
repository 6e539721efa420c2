//! Process exit codes, as the specification (section 4) fixes them. Scripts and the
//! webhook daemon branch on these, so they never change meaning.

use std::process::ExitCode;

/// What a command concluded, mapped one to one onto an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// In sync, or the command succeeded.
    Ok = 0,
    /// An error before any host was touched (bad manifest, bad arguments).
    Error = 1,
    /// `plan`: changes are pending; `drift`: drift was found.
    Pending = 2,
    /// Some hosts failed.
    Failed = 3,
    /// Some hosts were unreachable.
    Unreachable = 4,
}

impl Status {
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<Status> for ExitCode {
    fn from(status: Status) -> Self {
        ExitCode::from(status.code())
    }
}
