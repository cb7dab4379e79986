//! Paths and times as the command line shows and checks them: shared by
//! `indexer` and `indexer-mpi` (which includes this file), kept out of
//! `store`, which knows index files, not command lines.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use indexer::store::StoreError;

/// `file`'s path relative to `directory` (`/`-separated, as the walk shows
/// paths), if `file` lies inside it; `file` need not exist yet.
pub fn relative_to(file: &Path, directory: &Path) -> Option<String> {
    let root = fs::canonicalize(directory).ok()?;
    let name = file.file_name()?;
    let folder = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let path = fs::canonicalize(folder).ok()?.join(name);
    let relative = path.strip_prefix(&root).ok()?;
    Some(relative.to_string_lossy().into_owned())
}

/// Checks, before any work, that an index can be written at `file`: its
/// folder exists and is writable.
pub fn check_writable(file: &Path) -> Result<(), StoreError> {
    let folder = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let problem = match fs::metadata(folder) {
        Ok(meta) if !meta.is_dir() => Some(io::Error::other("not a folder")),
        Ok(_) => nix::unistd::access(folder, nix::unistd::AccessFlags::W_OK)
            .err()
            .map(io::Error::from),
        Err(e) => Some(e),
    };
    match problem {
        Some(e) => Err(StoreError::Io(folder.into(), "save into", e)),
        None => Ok(()),
    }
}

/// The canonical form of the directory an index is built from.
pub fn canonical_root(root: &Path) -> PathBuf {
    fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf())
}

/// `secs` since 1970 as `YYYY-MM-DD HH:MM UTC`.
pub fn format_time(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let (h, m) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{d:02} {h:02}:{m:02} UTC")
}
