//! The drop folder as a directory handle that never follows a link.
//!
//! Anyone who may write into the drop folder may also plant symbolic links, FIFOs and
//! replacement directories in it (issue 13). So every operation here works on a *name
//! inside the folder*, relative to a descriptor of the folder opened once at start:
//!
//! - a capture is opened with `O_NOFOLLOW | O_NONBLOCK` (a link is refused, a FIFO cannot
//!   block the reader) and only read when `fstat` of what was opened says "regular file";
//! - `processed/` and `failed/` are opened with `O_NOFOLLOW | O_DIRECTORY` right before
//!   each move, and the move is a `renameat` relative to that descriptor, so a link put in
//!   their place is refused rather than followed;
//! - nothing is ever overwritten: moves use `RENAME_NOREPLACE` and error sidecars are
//!   created with `O_CREAT | O_EXCL`, each picking a fresh name when one is taken;
//! - a file is moved only if it is the very file that was read (same device and inode):
//!   see [`DropDir::claim`].

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::FolderError;

/// Prefix of the hidden name a capture is renamed to while it is being filed away
/// (dotfiles are never taken as captures, so the watcher ignores it).
const CLAIM_PREFIX: &str = ".lookout-claim.";

/// Where a capture is filed once the daemon has answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shelf {
    /// `processed/`: ingested, or seen before.
    Processed,
    /// `failed/`: refused, beside a `NAME.error.txt`.
    Failed,
}

impl Shelf {
    /// The subdirectory's name.
    pub fn name(self) -> &'static str {
        match self {
            Shelf::Processed => "processed",
            Shelf::Failed => "failed",
        }
    }

    fn action(self) -> &'static str {
        match self {
            Shelf::Processed => "move into processed/",
            Shelf::Failed => "move into failed/",
        }
    }
}

/// The identity of a file whatever its name: the same device and inode (and type) are
/// the same file, for as long as someone holds it open; a freed inode number is soon
/// given to a new file, so an identity is only compared while the file is held open
/// (or, for what cannot be opened, such as a link, together with its type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// `st_mode & S_IFMT`: a regular file, a link, a FIFO...
    pub kind: u32,
}

impl FileId {
    fn of(st: &libc::stat) -> FileId {
        // dev_t, ino_t and mode_t are at most 64 (mode_t: 32) bits wide on every Unix
        // we build for.
        #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
        FileId {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            kind: (st.st_mode & libc::S_IFMT) as u32,
        }
    }

    /// The identity of what `meta` (from `symlink_metadata`, or `metadata` of an open
    /// file) describes.
    // mode_t is u32 on Linux, u16 on macOS: the cast is needed somewhere.
    #[allow(clippy::unnecessary_cast)]
    pub fn from_metadata(meta: &std::fs::Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            kind: meta.mode() & (libc::S_IFMT as u32),
        }
    }
}

/// A capture read from the folder: the bytes, and which file they came from.
#[derive(Debug)]
pub struct ReadFile {
    /// The file that was read (from `fstat` of the opened descriptor).
    pub id: FileId,
    /// Its content.
    pub body: Vec<u8>,
    /// Its modification time.
    pub mtime: SystemTime,
    /// Its link count: above 1, the same file also has a name outside the folder.
    pub nlink: u64,
    /// The file, open: keep it until the file is filed away. While it is open its
    /// inode cannot be freed and given to a newer file, so `id` names only this file.
    pub open: File,
}

/// What stood at a name in the folder when it was looked at.
#[derive(Debug)]
pub enum Found {
    /// A regular file, read.
    Capture(ReadFile),
    /// Something the folder refuses (never opened, or opened and not readable).
    Refused {
        /// What stood at the name, so that exactly it is moved to `failed/`.
        id: FileId,
        /// Why it is refused.
        refusal: Refusal,
        /// The file, held open when it could be opened (see [`ReadFile::open`]).
        open: Option<File>,
    },
    /// Nothing to take: the name is gone, names a directory, or was replaced while it
    /// was being opened (whatever replaced it comes with its own watch event).
    Nothing,
}

/// Why a name in the drop folder is refused without asking the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// A symbolic link: never followed, whatever it points to.
    #[error("refused: a symbolic link (links in the drop folder are never followed)")]
    Symlink,
    /// A FIFO, socket or device: only regular files are read.
    #[error("refused: not a regular file (a {0})")]
    NotRegular(&'static str),
    /// Larger than the source's `max_file_size`.
    #[error("file is {size} bytes, over max_file_size ({max} bytes)")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// Opening or reading failed for a reason that will not go away by itself
    /// (permissions, an I/O error).
    #[error("cannot read file: {0}")]
    Unreadable(#[source] io::Error),
}

/// Why a capture could not be filed into `processed/` or `failed/`.
#[derive(Debug, thiserror::Error)]
pub enum FileAwayError {
    /// The shelf is not a real directory (a link put in its place, or a file).
    #[error("{0}/ is not a real directory (a symbolic link?); nothing is moved into it")]
    NotADirectory(&'static str),
    /// An I/O error.
    #[error("cannot {action}: {source}")]
    Io {
        /// What was being done ("move into failed/").
        action: &'static str,
        /// The cause.
        source: io::Error,
    },
}

impl FileAwayError {
    /// Whether trying again later may succeed without anyone acting (see [`is_temporary`]).
    pub fn is_temporary(&self) -> bool {
        match self {
            FileAwayError::NotADirectory(_) => false,
            FileAwayError::Io { source, .. } => is_temporary(source),
        }
    }
}

/// Errors that mean "try again later", never "this file is bad": out of descriptors,
/// out of space or quota, out of memory, a lease held, an interrupted call. A capture
/// that meets one stays where it is (issue 13, part 4).
pub fn is_temporary(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::EMFILE
                | libc::ENFILE
                | libc::ENOSPC
                | libc::EDQUOT
                | libc::EAGAIN
                | libc::ENOMEM
                | libc::ENOBUFS
                | libc::EINTR
                | libc::EBUSY
        )
    ) || matches!(
        e.kind(),
        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
    )
}

/// A capture renamed to a hidden claim name, verified to be the file that was read.
#[derive(Debug)]
struct Claim {
    hidden: OsString,
    name: OsString,
}

/// The drop folder, opened once; see the module docs.
#[derive(Debug)]
pub struct DropDir {
    path: PathBuf,
    fd: OwnedFd,
}

impl DropDir {
    /// Creates (if need be) and opens the folder, makes sure `processed/` and `failed/`
    /// are real directories in it (creating them when missing), and puts back any capture
    /// a crash left under a claim name. The folder's own path may be a link (the
    /// operator's choice); nothing inside it is followed.
    pub fn open(path: &Path) -> Result<DropDir, FolderError> {
        let create = |source| FolderError::Create {
            path: path.to_owned(),
            source,
        };
        std::fs::create_dir_all(path).map_err(create)?;
        // The watcher reports absolute paths: a relative `path = "./drop"` must still
        // recognise its own files.
        let path = std::fs::canonicalize(path).map_err(create)?;
        let fd = open_dir(
            libc::AT_FDCWD,
            &cstr(path.as_os_str()).map_err(create)?,
            false,
        )
        .map_err(create)?;
        let dir = DropDir { path, fd };
        for shelf in [Shelf::Processed, Shelf::Failed] {
            dir.shelf(shelf).map_err(|e| match e {
                FileAwayError::NotADirectory(_) => FolderError::NotADirectory {
                    path: dir.path.join(shelf.name()),
                },
                FileAwayError::Io { source, .. } => FolderError::Create {
                    path: dir.path.join(shelf.name()),
                    source,
                },
            })?;
        }
        dir.recover_claims();
        Ok(dir)
    }

    /// The folder's canonical path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Looks at `name` without following it, and reads it if it is a regular file of at
    /// most `max` bytes. An `Err` is a temporary error ([`is_temporary`]) or one that
    /// tells nothing about the file (the caller leaves the file alone).
    pub fn read(&self, name: &OsStr, max: u64) -> io::Result<Found> {
        let c_name = cstr(name)?;
        let st = match fstatat(self.fd.as_raw_fd(), &c_name) {
            Ok(st) => st,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(Found::Nothing),
            Err(e) => return Err(e),
        };
        let id = FileId::of(&st);
        match kind(&st) {
            Kind::Directory => return Ok(Found::Nothing),
            Kind::Symlink => {
                return Ok(Found::Refused {
                    id,
                    refusal: Refusal::Symlink,
                    open: None,
                })
            }
            Kind::Other(what) => {
                return Ok(Found::Refused {
                    id,
                    refusal: Refusal::NotRegular(what),
                    open: None,
                })
            }
            Kind::Regular => {}
        }
        // O_NONBLOCK: should a FIFO be swapped in between the lstat and the open, the
        // open returns at once instead of waiting for a writer (and fstat refuses it).
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY;
        let mut file = match openat(self.fd.as_raw_fd(), &c_name, flags, 0) {
            Ok(fd) => File::from(fd),
            // Replaced (or removed) since the lstat: what replaced it has its own event.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ELOOP)) => {
                return Ok(Found::Nothing)
            }
            Err(e) if is_temporary(&e) => return Err(e),
            Err(e) => {
                return Ok(Found::Refused {
                    id,
                    refusal: Refusal::Unreadable(e),
                    open: None,
                })
            }
        };
        let st = fstat(file.as_raw_fd())?;
        if !matches!(kind(&st), Kind::Regular) {
            return Ok(Found::Nothing);
        }
        let id = FileId::of(&st);
        let size = st.st_size as u64;
        if size > max {
            return Ok(Found::Refused {
                id,
                refusal: Refusal::TooLarge { size, max },
                open: Some(file),
            });
        }
        let mut body = Vec::with_capacity(size as usize);
        // One byte over the limit tells a file that grew past it while being read.
        match (&mut file)
            .take(max.saturating_add(1))
            .read_to_end(&mut body)
        {
            Ok(_) => {}
            Err(e) if is_temporary(&e) => return Err(e),
            Err(e) => {
                return Ok(Found::Refused {
                    id,
                    refusal: Refusal::Unreadable(e),
                    open: Some(file),
                })
            }
        }
        if body.len() as u64 > max {
            return Ok(Found::Refused {
                id,
                refusal: Refusal::TooLarge {
                    size: body.len() as u64,
                    max,
                },
                open: Some(file),
            });
        }
        Ok(Found::Capture(ReadFile {
            id,
            body,
            mtime: mtime(&st),
            nlink: st.st_nlink as u64,
            open: file,
        }))
    }

    /// Takes `name` out of the way under a hidden claim name, if and only if it is still
    /// the file `id` (which must be held open, see [`ReadFile::open`]); `None` when the name is gone or now names another file, which is
    /// then left (or put back) in place for its own event.
    ///
    /// Checking the name and then moving it would leave a window in which a writer
    /// renames a newer version onto the name, and that unread version would be moved
    /// (issue 13, part 3). A rename moves whatever stands at the name, so the check is
    /// made *after* the rename, on the claim name, which only we use.
    fn claim(&self, name: &OsStr, id: FileId) -> io::Result<Option<Claim>> {
        let c_name = cstr(name)?;
        // The common case of a replaced file, without renaming anything.
        match fstatat(self.fd.as_raw_fd(), &c_name) {
            Ok(st) if FileId::of(&st) == id => {}
            Ok(_) => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => return Err(e),
        }
        let hidden = self.rename_fresh(&c_name, self.fd.as_raw_fd(), |n| {
            prefixed(&format!("{CLAIM_PREFIX}{n}."), name)
        });
        let hidden = match hidden {
            Ok(hidden) => hidden,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => return Err(e),
        };
        let claim = Claim {
            hidden,
            name: name.to_owned(),
        };
        match fstatat(self.fd.as_raw_fd(), &cstr(&claim.hidden)?) {
            Ok(st) if FileId::of(&st) == id => Ok(Some(claim)),
            _ => {
                // A newer version got in between: it was never read, so it goes back.
                self.put_back(claim);
                Ok(None)
            }
        }
    }

    /// Returns a claimed file to the folder under its own name, or under a fresh one
    /// when a newer file took that name meanwhile; either way the rename makes a watch
    /// event, so the file is taken again. Failing that, it stays under its claim name
    /// and the next start puts it back.
    fn put_back(&self, claim: Claim) {
        let Ok(hidden) = cstr(&claim.hidden) else {
            return;
        };
        let name = claim.name.clone();
        let back = self.rename_fresh(&hidden, self.fd.as_raw_fd(), |n| numbered(&name, n));
        if let Err(e) = back {
            tracing::error!(dir = %self.path.display(), file = ?claim.hidden, error = %e,
                "cannot put a claimed file back; the next start will");
        }
    }

    /// Moves `name` into `shelf` under its own name, or `NAME.1`, `NAME.2`, ... when
    /// that is taken, if it is still the file `id` (held open by the caller, so that its
    /// inode is not reused). `Ok(None)`: the name now holds
    /// another file, which is left for its own event. On error nothing has moved.
    pub fn file_away(
        &self,
        name: &OsStr,
        id: FileId,
        shelf: Shelf,
    ) -> Result<Option<OsString>, FileAwayError> {
        let io = |source| FileAwayError::Io {
            action: shelf.action(),
            source,
        };
        // The shelf first: when it cannot take the file, the file is not touched.
        let dir = self.shelf(shelf)?;
        let Some(claim) = self.claim(name, id).map_err(io)? else {
            return Ok(None);
        };
        let moved = cstr(&claim.hidden).and_then(|hidden| {
            self.rename_fresh(&hidden, dir.as_raw_fd(), |n| numbered(&claim.name, n))
        });
        match moved {
            Ok(dest) => Ok(Some(dest)),
            Err(e) => {
                self.put_back(claim);
                Err(io(e))
            }
        }
    }

    /// Moves `name` into `failed/` beside a new `DEST.error.txt` holding `note`, if it is
    /// still the file `id` (`Ok(None)` when not, as for [`file_away`](Self::file_away)).
    /// The sidecar is created exclusively, and the file and its sidecar get fresh names
    /// together when either is taken: a planted `NAME.error.txt` (say, a link to the
    /// database) is never written through. Returns the file's name in `failed/`, and
    /// whether the sidecar could be written.
    pub fn quarantine(
        &self,
        name: &OsStr,
        id: FileId,
        note: &str,
    ) -> Result<Option<(OsString, io::Result<()>)>, FileAwayError> {
        let io = |source| FileAwayError::Io {
            action: Shelf::Failed.action(),
            source,
        };
        let dir = self.shelf(Shelf::Failed)?;
        let Some(claim) = self.claim(name, id).map_err(io)? else {
            return Ok(None);
        };
        match self.quarantine_claim(&claim, dir.as_raw_fd(), note) {
            Ok(done) => Ok(Some(done)),
            Err(e) => {
                self.put_back(claim);
                Err(io(e))
            }
        }
    }

    fn quarantine_claim(
        &self,
        claim: &Claim,
        dir: RawFd,
        note: &str,
    ) -> io::Result<(OsString, io::Result<()>)> {
        let hidden = cstr(&claim.hidden)?;
        for n in 0..MAX_FRESH {
            let dest = numbered(&claim.name, n);
            // `DEST.error.txt`; built from the name so that a name shortened to fit
            // still keeps its number.
            let sidecar = match n {
                0 => suffixed(&claim.name, ".error.txt"),
                n => suffixed(&claim.name, &format!(".{n}.error.txt")),
            };
            let (c_dest, c_sidecar) = (cstr(&dest)?, cstr(&sidecar)?);
            let free = |name: &CString| match fstatat(dir, name) {
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(true),
                Ok(_) => Ok(false),
                Err(e) => Err(e),
            };
            if !free(&c_dest)? || !free(&c_sidecar)? {
                continue;
            }
            // The note is written under a hidden name and renamed into place, so that
            // whoever sees `DEST.error.txt` reads the whole reason, never an empty file.
            let mut draft_name = OsString::from(".");
            draft_name.push(&sidecar);
            let c_draft = cstr(&suffixed(&draft_name, ".tmp"))?;
            let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
            let mut draft = match openat(dir, &c_draft, flags, 0o644) {
                Ok(fd) => File::from(fd),
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
                Err(e) => return Err(e),
            };
            let written = draft.write_all(note.as_bytes());
            drop(draft);
            // SAFETY: unlinkat on a valid directory descriptor and a NUL-terminated
            // name; no memory is shared.
            let discard_draft = || unsafe { libc::unlinkat(dir, c_draft.as_ptr(), 0) };
            match rename_noreplace(self.fd.as_raw_fd(), &hidden, dir, &c_dest) {
                Ok(()) => {
                    let placed = rename_noreplace(dir, &c_draft, dir, &c_sidecar);
                    if placed.is_err() {
                        discard_draft();
                    }
                    return Ok((dest, written.and(placed)));
                }
                Err(e) => {
                    // The draft is ours, just made; it goes with the failed try.
                    discard_draft();
                    if e.raw_os_error() != Some(libc::EEXIST) {
                        return Err(e);
                    }
                }
            }
        }
        Err(io::Error::from_raw_os_error(libc::EEXIST))
    }

    /// Deletes `name` (`after = "delete"`) if it is still the file `id`; `Ok(false)`
    /// when the name now holds another file, which is left alone.
    pub fn delete(&self, name: &OsStr, id: FileId) -> Result<bool, FileAwayError> {
        let io = |source| FileAwayError::Io {
            action: "delete",
            source,
        };
        let Some(claim) = self.claim(name, id).map_err(io)? else {
            return Ok(false);
        };
        let hidden = cstr(&claim.hidden).map_err(io)?;
        // SAFETY: unlinkat on a valid directory descriptor and a NUL-terminated name.
        let rc = unsafe { libc::unlinkat(self.fd.as_raw_fd(), hidden.as_ptr(), 0) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            self.put_back(claim);
            return Err(io(e));
        }
        Ok(true)
    }

    /// Opens `shelf` without following a link, creating it when it is missing.
    fn shelf(&self, shelf: Shelf) -> Result<OwnedFd, FileAwayError> {
        let io = |source| FileAwayError::Io {
            action: shelf.action(),
            source,
        };
        let name = cstr(OsStr::new(shelf.name())).map_err(io)?;
        for _ in 0..2 {
            match open_dir(self.fd.as_raw_fd(), &name, true) {
                Ok(fd) => return Ok(fd),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    // SAFETY: mkdirat on a valid directory descriptor and a NUL-terminated
                    // name. It never follows a link: an existing name is EEXIST.
                    let rc = unsafe { libc::mkdirat(self.fd.as_raw_fd(), name.as_ptr(), 0o777) };
                    let e = io::Error::last_os_error();
                    if rc != 0 && e.raw_os_error() != Some(libc::EEXIST) {
                        return Err(io(e));
                    }
                }
                // O_NOFOLLOW | O_DIRECTORY on a link is ELOOP, on a file ENOTDIR.
                Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                    return Err(FileAwayError::NotADirectory(shelf.name()))
                }
                Err(e) => return Err(io(e)),
            }
        }
        Err(FileAwayError::NotADirectory(shelf.name()))
    }

    /// Renames `from` (in the folder) into `to_dir` under the first free name that
    /// `name_for(0)`, `name_for(1)`, ... gives; returns that name.
    fn rename_fresh(
        &self,
        from: &CString,
        to_dir: RawFd,
        name_for: impl Fn(u32) -> OsString,
    ) -> io::Result<OsString> {
        for n in 0..MAX_FRESH {
            let to = name_for(n);
            match rename_noreplace(self.fd.as_raw_fd(), from, to_dir, &cstr(&to)?) {
                Ok(()) => return Ok(to),
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::from_raw_os_error(libc::EEXIST))
    }

    /// Puts back every capture a crash left under a claim name.
    fn recover_claims(&self) {
        let Ok(entries) = std::fs::read_dir(&self.path) else {
            return;
        };
        for entry in entries.flatten() {
            let hidden = entry.file_name();
            let Some(rest) = hidden.as_bytes().strip_prefix(CLAIM_PREFIX.as_bytes()) else {
                continue;
            };
            let Some(dot) = rest.iter().position(|&b| b == b'.') else {
                continue;
            };
            let name = OsString::from_vec(rest[dot + 1..].to_vec());
            if name.is_empty() {
                continue;
            }
            tracing::info!(dir = %self.path.display(), file = ?name, "putting back a capture left claimed by a crash");
            self.put_back(Claim { hidden, name });
        }
    }
}

/// How many fresh names are tried before giving up (a folder holding thousands of
/// copies of one name is a folder someone is playing with).
const MAX_FRESH: u32 = 10_000;

/// `name`, then `name.1`, `name.2`, ...
fn numbered(name: &OsStr, n: u32) -> OsString {
    if n == 0 {
        return name.to_owned();
    }
    suffixed(name, &format!(".{n}"))
}

/// Longest file name (bytes) on the filesystems we run on.
const NAME_MAX: usize = 255;

/// `name` + `suffix`, `name` shortened as need be to fit [`NAME_MAX`]: a capture with a
/// 250-byte name must still be able to get its `.error.txt` (or `.1`) beside it.
fn suffixed(name: &OsStr, suffix: &str) -> OsString {
    let keep = name.len().min(NAME_MAX.saturating_sub(suffix.len()));
    let mut out = OsString::from_vec(name.as_bytes()[..keep].to_vec());
    out.push(suffix);
    out
}

/// `prefix` + `name`, `name` shortened as need be to fit [`NAME_MAX`].
fn prefixed(prefix: &str, name: &OsStr) -> OsString {
    let keep = name.len().min(NAME_MAX.saturating_sub(prefix.len()));
    let mut out = OsString::from(prefix);
    out.push(OsStr::from_bytes(&name.as_bytes()[..keep]));
    out
}

/// What a name is, by `lstat`.
enum Kind {
    Regular,
    Directory,
    Symlink,
    Other(&'static str),
}

fn kind(st: &libc::stat) -> Kind {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => Kind::Regular,
        libc::S_IFDIR => Kind::Directory,
        libc::S_IFLNK => Kind::Symlink,
        libc::S_IFIFO => Kind::Other("FIFO"),
        libc::S_IFSOCK => Kind::Other("socket"),
        libc::S_IFCHR => Kind::Other("character device"),
        libc::S_IFBLK => Kind::Other("block device"),
        _ => Kind::Other("special file"),
    }
}

fn mtime(st: &libc::stat) -> SystemTime {
    let (secs, nanos) = (st.st_mtime, st.st_mtime_nsec);
    if secs >= 0 {
        SystemTime::UNIX_EPOCH + Duration::new(secs as u64, nanos.clamp(0, 999_999_999) as u32)
    } else {
        SystemTime::UNIX_EPOCH
    }
}

fn cstr(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn openat(
    dir: RawFd,
    name: &CString,
    flags: libc::c_int,
    mode: libc::c_uint,
) -> io::Result<OwnedFd> {
    // SAFETY: openat with a valid (or AT_FDCWD) directory descriptor and a NUL-terminated
    // name; on success the returned descriptor is new and owned by nobody else.
    let fd = unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC, mode) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is not owned elsewhere.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn open_dir(dir: RawFd, name: &CString, nofollow: bool) -> io::Result<OwnedFd> {
    let mut flags = libc::O_RDONLY | libc::O_DIRECTORY;
    if nofollow {
        flags |= libc::O_NOFOLLOW;
    }
    openat(dir, name, flags, 0)
}

fn fstatat(dir: RawFd, name: &CString) -> io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstatat writes a whole `stat` into `st` on success, which is the only case
    // in which it is read; AT_SYMLINK_NOFOLLOW describes a link itself.
    let rc = unsafe {
        libc::fstatat(
            dir,
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: initialised by the successful call.
    Ok(unsafe { st.assume_init() })
}

fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: as in `fstatat`.
    let rc = unsafe { libc::fstat(fd, st.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: initialised by the successful call.
    Ok(unsafe { st.assume_init() })
}

/// `renameat` that never replaces an existing name (EEXIST instead).
fn rename_noreplace(
    from_dir: RawFd,
    from: &CString,
    to_dir: RawFd,
    to: &CString,
) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: renameat2 with valid directory descriptors and NUL-terminated names.
        // Called through syscall(2): not every libc wraps it.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                from_dir,
                from.as_ptr(),
                to_dir,
                to.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if !matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) {
            return Err(e);
        }
        // The filesystem (or kernel) cannot promise "no replace": check, then rename.
        // A name taken in between is replaced; only such filesystems have that window.
    }
    match fstatat(to_dir, to) {
        Ok(_) => return Err(io::Error::from_raw_os_error(libc::EEXIST)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(e),
    }
    // SAFETY: as above.
    let rc = unsafe { libc::renameat(from_dir, from.as_ptr(), to_dir, to.as_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> (tempfile::TempDir, DropDir) {
        let tmp = tempfile::tempdir().unwrap();
        let drop = DropDir::open(&tmp.path().join("drop")).unwrap();
        (tmp, drop)
    }

    #[test]
    fn a_symlink_is_refused_without_being_read() {
        let (tmp, drop) = dir();
        std::fs::write(tmp.path().join("secret"), "top secret").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("secret"), drop.path().join("x.txt")).unwrap();
        let found = drop.read(OsStr::new("x.txt"), 1000).unwrap();
        assert!(
            matches!(
                found,
                Found::Refused {
                    refusal: Refusal::Symlink,
                    ..
                }
            ),
            "{found:?}"
        );
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let (_tmp, drop) = dir();
        let path = cstr(drop.path().join("p.xml").as_os_str()).unwrap();
        // SAFETY: mkfifo with a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o644) }, 0);
        let found = drop.read(OsStr::new("p.xml"), 1000).unwrap();
        assert!(
            matches!(
                found,
                Found::Refused {
                    refusal: Refusal::NotRegular("FIFO"),
                    ..
                }
            ),
            "{found:?}"
        );
    }

    #[test]
    fn a_replaced_file_is_not_claimed_and_the_newer_one_stays() {
        let (_tmp, drop) = dir();
        std::fs::write(drop.path().join("f.xml"), "A").unwrap();
        let Found::Capture(a) = drop.read(OsStr::new("f.xml"), 1000).unwrap() else {
            panic!("A is read")
        };
        std::fs::write(drop.path().join(".f.tmp"), "B").unwrap();
        std::fs::rename(drop.path().join(".f.tmp"), drop.path().join("f.xml")).unwrap();
        assert!(drop.claim(OsStr::new("f.xml"), a.id).unwrap().is_none());
        assert_eq!(std::fs::read(drop.path().join("f.xml")).unwrap(), b"B");
    }

    #[test]
    fn under_a_storm_of_renames_only_the_file_that_was_read_is_filed() {
        let (_tmp, drop) = dir();
        let folder = drop.path().to_owned();
        let writer = std::thread::spawn(move || {
            for v in 0..2000 {
                let tmp = folder.join(format!(".v{v}.tmp"));
                std::fs::write(&tmp, format!("version {v}")).unwrap();
                std::fs::rename(&tmp, folder.join("f.xml")).unwrap();
            }
        });
        let (mut filed, mut replaced) = (0, 0);
        while !writer.is_finished() || drop.path().join("f.xml").exists() {
            let Found::Capture(f) = drop.read(OsStr::new("f.xml"), 100).unwrap() else {
                continue;
            };
            match drop
                .file_away(OsStr::new("f.xml"), f.id, Shelf::Processed)
                .unwrap()
            {
                Some(dest) => {
                    let moved = std::fs::read(drop.path().join("processed").join(&dest)).unwrap();
                    assert_eq!(moved, f.body, "a file other than the one read was filed");
                    filed += 1;
                }
                None => replaced += 1,
            }
        }
        writer.join().unwrap();
        assert!(filed > 0, "filed {filed}, replaced {replaced}");
        let hidden = std::fs::read_dir(drop.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(CLAIM_PREFIX)
            })
            .count();
        assert_eq!(hidden, 0, "no claim left behind");
    }

    #[test]
    fn files_are_moved_under_fresh_names_never_over_existing_ones() {
        let (_tmp, drop) = dir();
        for _ in 0..3 {
            std::fs::write(drop.path().join("f.txt"), "x").unwrap();
            let Found::Capture(f) = drop.read(OsStr::new("f.txt"), 10).unwrap() else {
                panic!("read")
            };
            drop.file_away(OsStr::new("f.txt"), f.id, Shelf::Processed)
                .unwrap()
                .unwrap();
        }
        let mut names: Vec<_> = std::fs::read_dir(drop.path().join("processed"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["f.txt", "f.txt.1", "f.txt.2"]);
    }

    #[test]
    fn a_planted_sidecar_link_is_never_written_through() {
        let (tmp, drop) = dir();
        let victim = tmp.path().join("victim.db");
        std::fs::write(&victim, "precious").unwrap();
        std::os::unix::fs::symlink(&victim, drop.path().join("failed/j.txt.error.txt")).unwrap();
        std::fs::write(drop.path().join("j.txt"), "junk").unwrap();
        let Found::Capture(f) = drop.read(OsStr::new("j.txt"), 10).unwrap() else {
            panic!("read")
        };
        let (dest, written) = drop
            .quarantine(OsStr::new("j.txt"), f.id, "why")
            .unwrap()
            .unwrap();
        written.unwrap();
        assert_eq!(dest, "j.txt.1");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        let sidecar = drop.path().join("failed/j.txt.1.error.txt");
        assert_eq!(std::fs::read_to_string(sidecar).unwrap(), "why");
    }

    #[test]
    fn a_file_with_the_longest_name_is_still_claimed_and_quarantined_twice() {
        let (_tmp, drop) = dir();
        let name = "n".repeat(NAME_MAX);
        for _ in 0..2 {
            std::fs::write(drop.path().join(&name), "junk").unwrap();
            let Found::Capture(f) = drop.read(OsStr::new(&name), 10).unwrap() else {
                panic!("read")
            };
            let (dest, written) = drop
                .quarantine(OsStr::new(&name), f.id, "why")
                .unwrap()
                .unwrap();
            written.unwrap();
            assert!(dest.len() <= NAME_MAX);
        }
        assert_eq!(
            std::fs::read_dir(drop.path().join("failed"))
                .unwrap()
                .count(),
            4,
            "two files, two sidecars"
        );
    }

    #[test]
    fn a_shelf_replaced_by_a_link_is_refused() {
        let (tmp, drop) = dir();
        let elsewhere = tmp.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::rename(drop.path().join("failed"), drop.path().join("failed.old")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, drop.path().join("failed")).unwrap();
        std::fs::write(drop.path().join("j.txt"), "junk").unwrap();
        let Found::Capture(f) = drop.read(OsStr::new("j.txt"), 10).unwrap() else {
            panic!("read")
        };
        let err = drop
            .quarantine(OsStr::new("j.txt"), f.id, "why")
            .unwrap_err();
        assert!(
            matches!(err, FileAwayError::NotADirectory("failed")),
            "{err}"
        );
        assert!(drop.path().join("j.txt").exists(), "the file is not moved");
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
        let reopened = DropDir::open(drop.path());
        assert!(
            matches!(reopened, Err(FolderError::NotADirectory { .. })),
            "{reopened:?}"
        );
    }

    #[test]
    fn a_claim_left_by_a_crash_is_put_back_at_open() {
        let (_tmp, drop) = dir();
        std::fs::write(drop.path().join(".lookout-claim.0.page.txt"), "x").unwrap();
        let drop = DropDir::open(drop.path()).unwrap();
        assert!(drop.path().join("page.txt").exists());
    }

    #[test]
    fn out_of_descriptors_and_space_are_temporary() {
        for errno in [
            libc::EMFILE,
            libc::ENFILE,
            libc::ENOSPC,
            libc::EDQUOT,
            libc::EAGAIN,
        ] {
            assert!(
                is_temporary(&io::Error::from_raw_os_error(errno)),
                "{errno}"
            );
        }
        for errno in [libc::EACCES, libc::EIO, libc::ELOOP] {
            assert!(
                !is_temporary(&io::Error::from_raw_os_error(errno)),
                "{errno}"
            );
        }
    }
}
