//! Commit signatures: with `require_signed`, the head must carry an SSH signature (as
//! `git commit -S` with `gpg.format = ssh` makes) by a key of the allowed signers file
//! (OpenSSH's format, one `PRINCIPAL KEY` a line). Checked with OpenSSH's own
//! `ssh-keygen -Y find-principals` and `-Y verify` in the `git` namespace, the way
//! `git verify-commit` does it, so there is no second implementation of SSHSIG here.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Why a head was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("commit `{0}` is not signed")]
    Unsigned(String),
    #[error("commit `{0}` carries a signature that is not an SSH signature")]
    NotSsh(String),
    #[error("commit `{commit}` is not signed by an allowed signer of `{signers}`")]
    Unknown { commit: String, signers: String },
    #[error("cannot check the signature of `{commit}`: {reason}")]
    Check { commit: String, reason: String },
}

/// Checks `signature` over `data` (commit `commit`'s) against `allowed_signers`.
/// Returns the principal that signed.
pub fn verify(
    commit: &str,
    signature: Option<super::repo::Signed>,
    allowed_signers: &Path,
) -> Result<String, SignatureError> {
    let Some(super::repo::Signed {
        signature: sig,
        data,
    }) = signature
    else {
        return Err(SignatureError::Unsigned(commit.into()));
    };
    if !sig.starts_with(b"-----BEGIN SSH SIGNATURE-----") {
        return Err(SignatureError::NotSsh(commit.into()));
    }
    let check = |reason: String| SignatureError::Check {
        commit: commit.into(),
        reason,
    };
    let dir = tempfile_dir().map_err(|e| check(e.to_string()))?;
    let sig_path = dir.join("commit.sig");
    std::fs::write(&sig_path, &sig).map_err(|e| check(e.to_string()))?;
    let unknown = || SignatureError::Unknown {
        commit: commit.into(),
        signers: allowed_signers.display().to_string(),
    };
    let found = Command::new("ssh-keygen")
        .args(["-Y", "find-principals", "-s"])
        .arg(&sig_path)
        .arg("-f")
        .arg(allowed_signers)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| check(format!("cannot run `ssh-keygen`: {e}")));
    let result = found.and_then(|found| {
        if !found.status.success() {
            return Err(unknown());
        }
        let principals = String::from_utf8_lossy(&found.stdout).to_string();
        for principal in principals.lines().map(str::trim).filter(|p| !p.is_empty()) {
            let mut child = Command::new("ssh-keygen")
                .args(["-Y", "verify", "-n", "git", "-f"])
                .arg(allowed_signers)
                .arg("-I")
                .arg(principal)
                .arg("-s")
                .arg(&sig_path)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| check(format!("cannot run `ssh-keygen`: {e}")))?;
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(&data).map_err(|e| check(e.to_string()))?;
            }
            let status = child.wait().map_err(|e| check(e.to_string()))?;
            if status.success() {
                return Ok(principal.to_string());
            }
        }
        Err(unknown())
    });
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// A private scratch directory for the signature file.
fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let mut bytes = [0u8; 8];
    getrandom::getrandom(&mut bytes).map_err(std::io::Error::other)?;
    let dir = std::env::temp_dir().join(format!("tandem-sig-{}", hex::encode(bytes)));
    std::fs::create_dir(&dir)?;
    Ok(dir)
}
