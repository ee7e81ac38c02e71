//! Which files some process still has open for writing (Linux: `/proc/*/fd`).
//!
//! A writer that keeps a capture open and pauses makes no event for as long as it
//! pauses; only the close says it is done (issue 13, part 6). Before a file is taken on
//! a quiet time alone (no close seen), the folder source asks here whether a writer
//! still holds it, and if so keeps waiting for the close.
//!
//! The limit: only processes whose `/proc/PID/fd` we may read are seen, that is those of
//! our own user (all of them when running as root), in our PID namespace, and not hidden
//! by `hidepid` / systemd's `ProtectProc=`. A file-lease probe (`F_SETLEASE`) would see
//! every writer, but only of files we own, and a lease broken while held sends the
//! daemon SIGIO, whose default action ends the process; so it is not used.

use std::collections::HashSet;

use super::drop_dir::FileId;

/// The files among `ids` that a process we can see has open for writing (opened
/// write-only or read-write). Elsewhere than on Linux: none.
pub fn open_for_writing(ids: &HashSet<FileId>) -> HashSet<FileId> {
    let mut found = HashSet::new();
    if ids.is_empty() || !cfg!(target_os = "linux") {
        return found;
    }
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return found;
    };
    for proc in procs.flatten() {
        let is_pid = proc
            .file_name()
            .to_str()
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if !is_pid {
            continue;
        }
        // Not ours to look at (another user's process) or gone: skipped.
        let Ok(fds) = std::fs::read_dir(proc.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            // stat follows the /proc link to the open file itself, wherever it is now.
            let Ok(meta) = std::fs::metadata(fd.path()) else {
                continue;
            };
            let id = FileId::from_metadata(&meta);
            if !ids.contains(&id) || found.contains(&id) {
                continue;
            }
            let fdinfo = proc.path().join("fdinfo").join(fd.file_name());
            if opened_for_writing(&fdinfo) {
                found.insert(id);
            }
        }
        if found.len() == ids.len() {
            break;
        }
    }
    found
}

/// Whether `/proc/PID/fdinfo/N` says the descriptor was opened for writing. When it
/// cannot be read the answer is yes: waiting longer is the safe mistake.
fn opened_for_writing(fdinfo: &std::path::Path) -> bool {
    let Ok(text) = std::fs::read_to_string(fdinfo) else {
        return true;
    };
    text.lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|f| i64::from_str_radix(f.trim(), 8).ok())
        .is_none_or(|flags| flags & i64::from(libc::O_ACCMODE) != i64::from(libc::O_RDONLY))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn id(path: &std::path::Path) -> FileId {
        FileId::from_metadata(&std::fs::metadata(path).unwrap())
    }

    #[test]
    fn a_file_open_for_writing_is_seen_and_a_closed_or_read_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let (w, r) = (dir.path().join("w"), dir.path().join("r"));
        let writer = std::fs::File::create(&w).unwrap();
        std::fs::write(&r, "x").unwrap();
        let reader = std::fs::File::open(&r).unwrap();
        let ids: HashSet<FileId> = [id(&w), id(&r)].into();
        assert_eq!(open_for_writing(&ids), [id(&w)].into());
        drop(writer);
        assert!(open_for_writing(&ids).is_empty());
        drop(reader);
    }
}
