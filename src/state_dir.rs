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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_run_history_and_its_directory_are_private() {
        let root = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open_site(root.path()).unwrap();
        drop(store);
        let dir = root.path().join(".tandem");
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("history.sqlite")), 0o600);

        // An older, world-readable state directory is tightened on the next open,
        // WAL companions included.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        for name in ["history.sqlite", "history.sqlite-wal"] {
            let path = dir.join(name);
            std::fs::write(&path, b"").ok();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        std::fs::remove_file(dir.join("history.sqlite")).unwrap();
        let store = crate::store::Store::open_site(root.path()).unwrap();
        assert_eq!(mode(&dir), 0o700);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
        drop(store);

        // A directory named otherwise (`--history` elsewhere) is left as it is.
        let other = root.path().join("shared");
        std::fs::create_dir(&other).unwrap();
        std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o750)).unwrap();
        create(&other).unwrap();
        assert_eq!(mode(&other), 0o750);
    }
}
