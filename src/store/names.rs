//! The names of an index's files, in one place: the index `FILE`, its
//! delta `FILE.delta` (see [`super::refresh`]), and `FILE.tmp.PID`, the
//! name a save gives its new file just before renaming it over `FILE`
//! (or for the whole save, where the file system cannot make unnamed
//! files).

use std::fs;
use std::path::{Path, PathBuf};

/// The side file holding `path`'s refreshes.
pub fn delta_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".delta");
    PathBuf::from(name)
}

/// `FILE.tmp.PID`: where process PID writes FILE's next version.
pub(super) fn temporary_path(destination: &Path, pid: u32) -> PathBuf {
    let mut name = destination.as_os_str().to_owned();
    name.push(format!(".tmp.{pid}"));
    PathBuf::from(name)
}

/// A regex over relative paths matching an index at `relative` and every
/// file its saves make beside it, so a walk of the tree that holds the
/// index can leave them out.
pub fn family_pattern(relative: &str) -> String {
    format!(
        r"^{}(?:\.delta|\.part-[0-9]+-of-[0-9]+)?(?:\.tmp\.[0-9]+)?$",
        regex::escape(relative)
    )
}

/// Removes temporaries left by killed saves of `destination` (their process
/// is gone); a live process's temporary is left alone.
pub(super) fn remove_stale_temporaries(destination: &Path) {
    let (Some(folder), Some(name)) = (destination.parent(), destination.file_name()) else {
        return;
    };
    let folder = if folder.as_os_str().is_empty() {
        Path::new(".")
    } else {
        folder
    };
    let mut prefix = name.to_owned();
    prefix.push(".tmp.");
    let prefix = prefix.to_string_lossy().into_owned();
    let Ok(entries) = fs::read_dir(folder) else {
        return;
    };
    for entry in entries.flatten() {
        let entry_name = entry.file_name();
        let entry_name = entry_name.to_string_lossy();
        let Some(pid) = entry_name.strip_prefix(&prefix) else {
            continue;
        };
        let Ok(pid) = pid.parse::<i32>() else {
            continue;
        };
        let gone = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
            == Err(nix::errno::Errno::ESRCH);
        if gone || pid == std::process::id() as i32 {
            let _ = fs::remove_file(entry.path());
        }
    }
}
