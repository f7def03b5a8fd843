//! Files that can hold a secret — the database, the secret key, phones' uploaded logs,
//! exports with passwords — are the owner's only: directories 0700, files 0600, created so
//! and tightened where an older release left them wider. And one process serves one SQLite
//! database: a lock held for the life of the server.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Creates `dir` (and its parents) owner-only, or narrows an existing one to the owner.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return restrict(dir, 0o700);
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    // A parent that existed keeps its mode; `dir` itself must be ours alone.
    restrict(dir, 0o700)
}

/// Narrows an existing file or directory to `mode` when it allows more (with a warning: the
/// operator should know an older file was readable by others).
pub fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let current = meta.permissions().mode() & 0o777;
    if current & !mode != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        tracing::warn!(
            path = %path.display(),
            "narrowed permissions from {current:o} to {mode:o}: it may hold secrets"
        );
    }
    Ok(())
}

/// Creates (or truncates) a file only its owner can read.
pub fn create_private(path: &Path) -> std::io::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // An existing file keeps its mode on open: narrow it.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(f)
}

/// Writes `bytes` to an owner-only file, its directory created owner-only.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        private_dir(dir)?;
    }
    create_private(path)?.write_all(bytes)
}

/// An exclusive lock on a file beside the database, held while the value lives.
pub struct ServeLock {
    _file: File,
    pub path: PathBuf,
}

/// Takes the serving lock of the SQLite database at `db`: a second server on the same
/// database (whose workers would deliver every change twice) is refused at start.
pub fn lock_database(db: &Path) -> anyhow::Result<ServeLock> {
    use rustix::fs::{flock, FlockOperation};
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    let path = PathBuf::from(name);
    if let Some(dir) = db
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        private_dir(dir)?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("lock file {}: {e}", path.display()))?;
    if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
        let holder = std::fs::read_to_string(&path).unwrap_or_default();
        anyhow::bail!(
            "another voxprov server{} is running on the SQLite database {}: one server per SQLite \
             database (its delivery workers own the database). To run several nodes, use \
             PostgreSQL (database_url = postgres://…)",
            match holder.trim() {
                "" => String::new(),
                pid => format!(" (pid {pid})"),
            },
            db.display()
        );
    }
    file.set_len(0)?;
    writeln!(file, "{}", std::process::id())?;
    Ok(ServeLock { _file: file, path })
}
