//! tandem's local state directory (`.tandem/` in the site: run history, locks, caches,
//! the secret-bearing ledger) is private to the operator: created 0700, its files 0600.
//! The history and caches hold node names, errors and keyed digests that are nobody
//! else's business, and the ledger names the files that carry secrets.

use std::path::Path;

/// Creates `dir` (and its parents) mode 0700. An existing `.tandem` directory is
/// tightened to 0700; other existing directories (a `--history` elsewhere) are left as
/// the operator made them.
pub fn create(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if dir.is_dir() {
        if dir.file_name().is_some_and(|n| n == ".tandem") {
            let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
            if mode != 0o700 {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
            }
        }
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Creates the file at `path` 0600 if it does not exist (before a library such as
/// SQLite creates it with the umask's mode, and gives its `-wal`/`-shm` companions that
/// same mode), and tightens it and each existing `path + suffix` to 0600.
pub fn private_file(path: &Path, suffixes: &[&str]) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    for suffix in std::iter::once(&"").chain(suffixes) {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = Path::new(&name);
        match std::fs::metadata(file) {
            Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))?;
            }
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}
