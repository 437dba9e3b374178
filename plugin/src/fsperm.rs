//! Private files and folders on disk: the gateway's data directory is created 0700, the SQLite database
//! (and so its `-wal`/`-shm` files, which SQLite creates with the database's mode) and the secret files
//! 0600; at start [`warn_if_open`] names every one of them that is more open, with the `chmod` that fixes
//! it. The database holds phone numbers and the audit trail, the files hold the keys: no other local user
//! may read them.
//!
//! On non-Unix systems the modes do not exist: creation is plain and nothing is checked.

use std::path::{Path, PathBuf};

/// The mode of the data directory.
pub const DIR_MODE: u32 = 0o700;
/// The mode of the database and secret files.
pub const FILE_MODE: u32 = 0o600;

/// What is checked at start: a folder (must be at most [`DIR_MODE`]) or a file (at most [`FILE_MODE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

impl Kind {
    pub fn mode(self) -> u32 {
        match self {
            Kind::Dir => DIR_MODE,
            Kind::File => FILE_MODE,
        }
    }
}

/// `create_dir_all` with mode 0700 for every folder it creates (existing folders are left as they are).
pub fn create_private_dir_all(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(DIR_MODE);
    }
    builder.create(dir)
}

/// Creates `path` empty with mode 0600 when it does not exist yet; an existing file is left alone.
pub fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(FILE_MODE);
    }
    match opts.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// The permission bits of `path` when it exists and grants more than `kind` allows (group or other
/// bits beyond the owner's), else `None`.
pub fn too_open(path: &Path, kind: Kind) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & !kind.mode() != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = (path, kind);
        None
    }
}

/// Logs one warning per path that is more open than its kind allows: the path, its mode and the fix.
/// Returns the paths warned about.
pub fn warn_if_open(paths: &[(PathBuf, Kind)]) -> Vec<PathBuf> {
    let mut warned = Vec::new();
    for (path, kind) in paths {
        if let Some(mode) = too_open(path, *kind) {
            tracing::warn!(
                "{} has mode {mode:04o}, more open than {:04o}: other local users may read it; fix: chmod {:o} {}",
                path.display(),
                kind.mode(),
                kind.mode(),
                path.display()
            );
            warned.push(path.clone());
        }
    }
    warned
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn creates_private_and_leaves_existing_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        create_private_dir_all(&dir).unwrap();
        assert_eq!(mode(&tmp.path().join("a")), 0o700);
        assert_eq!(mode(&dir), 0o700);
        let file = dir.join("f");
        create_private_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
        std::fs::write(&file, "x").unwrap();
        create_private_file(&file).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
    }

    #[test]
    fn too_open_sees_group_and_other_bits() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("f");
        std::fs::write(&file, "").unwrap();
        for (m, want) in [
            (0o600, None),
            (0o400, None),
            (0o640, Some(0o640)),
            (0o604, Some(0o604)),
        ] {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(m)).unwrap();
            assert_eq!(too_open(&file, Kind::File), want, "{m:o}");
        }
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(too_open(tmp.path(), Kind::Dir), Some(0o755));
        assert_eq!(too_open(&tmp.path().join("missing"), Kind::File), None);
    }
}
