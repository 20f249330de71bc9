//! Confined file access: the only way a node opens a file a request names (an upload's
//! `file`, `/v2/table/bind/path`'s `path`, `/v2/model/export`'s `path`).
//!
//! A path is accepted only under one of the node's configured *data roots*, after resolving
//! every symlink, and a file is read only if the handle that was opened is a regular file
//! whose real location is still under a root (the check is made on the opened handle, so a
//! symlink or directory swapped in between the check and the open cannot lead outside). Devices
//! (`/dev/zero`), FIFOs (which would block an open or a read forever), directories and `/proc`
//! are refused; so are files larger than the node's limit. Errors name the field and the path
//! the caller gave, never the file's contents.

use std::fs::File;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// Default largest file a request may make the node read (and largest multipart upload).
pub const DEFAULT_MAX_FILE_BYTES: u64 = 4 << 30;

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileErrorKind {
    /// No such file, or it cannot be resolved.
    NotFound,
    /// Resolves outside every data root (or no root is configured).
    OutsideRoots,
    /// Not a regular file (a directory, device, FIFO or socket).
    NotRegular,
    /// Larger than the node's limit.
    TooLarge,
    /// Any other IO error.
    Io,
}

/// A refused or failed file access; the message names the field and the given path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub field: String,
    pub kind: FileErrorKind,
    pub reason: String,
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for FileError {}

/// A path as it may appear in an error: at most 200 characters, escaped.
fn shown(path: &str) -> String {
    let mut s: String = path.chars().take(200).collect();
    if path.chars().count() > 200 {
        s.push_str("...");
    }
    s.escape_debug().to_string()
}

/// The directories server-side paths must lie under, canonical, and the largest file that may
/// be read. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DataRoots {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    roots: Vec<PathBuf>,
    max_file_bytes: u64,
}

impl Default for DataRoots {
    /// No roots: every path is refused.
    fn default() -> Self {
        DataRoots::none()
    }
}

impl DataRoots {
    /// No roots: every path is refused (components run outside a node).
    pub fn none() -> Self {
        DataRoots {
            inner: Arc::new(Inner {
                roots: Vec::new(),
                max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            }),
        }
    }

    /// Roots from existing directories, canonicalised. A root that does not exist, is not a
    /// directory, or is `/`, is an error naming it.
    pub fn new(
        dirs: impl IntoIterator<Item = PathBuf>,
        max_file_bytes: u64,
    ) -> Result<Self, String> {
        let mut roots: Vec<PathBuf> = Vec::new();
        for dir in dirs {
            let show = dir.display().to_string();
            if dir.as_os_str().is_empty() {
                return Err("data root: an empty path is not a directory".into());
            }
            let canon =
                std::fs::canonicalize(&dir).map_err(|e| format!("data root `{show}`: {e}"))?;
            if !canon.is_dir() {
                return Err(format!("data root `{show}` is not a directory"));
            }
            if canon.parent().is_none() {
                return Err(format!(
                    "data root `{show}` is the file system root; name a directory that holds only data"
                ));
            }
            if !roots.contains(&canon) {
                roots.push(canon);
            }
        }
        if max_file_bytes == 0 {
            return Err("max_upload_bytes: must be at least 1 byte".into());
        }
        Ok(DataRoots {
            inner: Arc::new(Inner {
                roots,
                max_file_bytes,
            }),
        })
    }

    /// The canonical roots.
    pub fn roots(&self) -> &[PathBuf] {
        &self.inner.roots
    }

    /// The largest file that may be read.
    pub fn max_file_bytes(&self) -> u64 {
        self.inner.max_file_bytes
    }

    fn err(field: &str, kind: FileErrorKind, reason: String) -> FileError {
        FileError {
            field: field.to_string(),
            kind,
            reason,
        }
    }

    fn under_roots(&self, canon: &Path) -> bool {
        self.inner.roots.iter().any(|r| canon.starts_with(r))
    }

    fn outside(&self, field: &str, path: &str) -> FileError {
        let reason = if self.inner.roots.is_empty() {
            format!(
                "`{}` is refused: this node has no data roots configured (--data-root)",
                shown(path)
            )
        } else {
            format!(
                "`{}` is not under a data root of this node ({})",
                shown(path),
                self.inner
                    .roots
                    .iter()
                    .map(|r| r.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        Self::err(field, FileErrorKind::OutsideRoots, reason)
    }

    /// Opens `path` for reading: it must resolve under a root and be a regular file of at most
    /// [`max_file_bytes`](Self::max_file_bytes). Returns the handle and its canonical path.
    pub fn open_file(&self, field: &str, path: &str) -> Result<(File, PathBuf), FileError> {
        if path.is_empty() || path.contains('\0') {
            return Err(Self::err(
                field,
                FileErrorKind::NotFound,
                "must be a non-empty path without NUL".into(),
            ));
        }
        if self.inner.roots.is_empty() {
            return Err(self.outside(field, path));
        }
        let canon = std::fs::canonicalize(path).map_err(|_| {
            Self::err(
                field,
                FileErrorKind::NotFound,
                format!("`{}`: no such file on this node", shown(path)),
            )
        })?;
        if !self.under_roots(&canon) {
            return Err(self.outside(field, path));
        }
        let file = open_no_follow(&canon).map_err(|e| {
            Self::err(
                field,
                FileErrorKind::Io,
                format!("`{}`: cannot open: {}", shown(path), e.kind()),
            )
        })?;
        // Checks on the opened handle: what we read is what we checked.
        let meta = file.metadata().map_err(|e| {
            Self::err(
                field,
                FileErrorKind::Io,
                format!("`{}`: {}", shown(path), e.kind()),
            )
        })?;
        if !meta.is_file() {
            return Err(Self::err(
                field,
                FileErrorKind::NotRegular,
                format!(
                    "`{}` is not a regular file (a directory, device, FIFO or socket)",
                    shown(path)
                ),
            ));
        }
        if let Some(real) = handle_path(&file)
            && !self.under_roots(&real)
        {
            return Err(self.outside(field, path));
        }
        if meta.len() > self.inner.max_file_bytes {
            return Err(Self::err(
                field,
                FileErrorKind::TooLarge,
                format!(
                    "`{}` is {} bytes, more than this node's limit of {} bytes",
                    shown(path),
                    meta.len(),
                    self.inner.max_file_bytes
                ),
            ));
        }
        Ok((file, canon))
    }

    /// Reads a confined file as UTF-8 text, at most `max_file_bytes` (the file may not grow
    /// past the limit while it is read).
    pub fn read_text(&self, field: &str, path: &str) -> Result<(String, PathBuf), FileError> {
        let (file, canon) = self.open_file(field, path)?;
        let limit = self.inner.max_file_bytes;
        let mut bytes = Vec::new();
        file.take(limit + 1).read_to_end(&mut bytes).map_err(|e| {
            Self::err(
                field,
                FileErrorKind::Io,
                format!("`{}`: cannot read: {}", shown(path), e.kind()),
            )
        })?;
        if bytes.len() as u64 > limit {
            return Err(Self::err(
                field,
                FileErrorKind::TooLarge,
                format!(
                    "`{}` grew past this node's limit of {limit} bytes",
                    shown(path)
                ),
            ));
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            Self::err(
                field,
                FileErrorKind::Io,
                format!(
                    "`{}` is not UTF-8 text (invalid byte at offset {})",
                    shown(path),
                    e.utf8_error().valid_up_to()
                ),
            )
        })?;
        Ok((text, canon))
    }

    /// A directory to write into: `path` (created if missing) must lie under a root once
    /// resolved, and must not climb with `..`. Returns its canonical path.
    pub fn dir_for_write(&self, field: &str, path: &str) -> Result<PathBuf, FileError> {
        self.check_write_dir(field, path)?;
        let p = Path::new(path);
        std::fs::create_dir_all(p).map_err(|e| {
            Self::err(
                field,
                FileErrorKind::Io,
                format!("cannot create `{}`: {}", shown(path), e.kind()),
            )
        })?;
        let canon = std::fs::canonicalize(p).map_err(|_| self.outside(field, path))?;
        if !self.under_roots(&canon) || !canon.is_dir() {
            return Err(self.outside(field, path));
        }
        Ok(canon)
    }

    /// Whether [`dir_for_write`](Self::dir_for_write) would accept `path`, creating nothing.
    pub fn check_write_dir(&self, field: &str, path: &str) -> Result<(), FileError> {
        if path.is_empty() || path.contains('\0') {
            return Err(Self::err(
                field,
                FileErrorKind::NotFound,
                "must be a non-empty path without NUL".into(),
            ));
        }
        let p = Path::new(path);
        if p.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(Self::err(
                field,
                FileErrorKind::OutsideRoots,
                format!("`{}` must not contain `..`", shown(path)),
            ));
        }
        if self.inner.roots.is_empty() {
            return Err(self.outside(field, path));
        }
        // The longest existing ancestor decides where the new directories go.
        let mut existing = p.to_path_buf();
        while !existing.exists() {
            match existing.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => existing = parent.to_path_buf(),
                _ => {
                    existing = PathBuf::from(".");
                    break;
                }
            }
        }
        let canon_base = std::fs::canonicalize(&existing).map_err(|_| self.outside(field, path))?;
        if !self.under_roots(&canon_base) {
            return Err(self.outside(field, path));
        }
        Ok(())
    }
}

/// Opens without following a symlink in the last component and without blocking on a FIFO.
fn open_no_follow(path: &Path) -> std::io::Result<File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    opts.open(path)
}

/// Where an open handle really is (Linux: `/proc/self/fd/N`); `None` where that is unknown.
fn handle_path(file: &File) -> Option<PathBuf> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots(dir: &Path) -> DataRoots {
        DataRoots::new([dir.to_path_buf()], 1 << 20).unwrap()
    }

    #[test]
    fn a_file_under_a_root_is_read() {
        let (_t, dir) = tempdir();
        std::fs::write(dir.join("a.csv"), "id,x\n1,2\n").unwrap();
        let (text, canon) = roots(&dir)
            .read_text("file", dir.join("a.csv").to_str().unwrap())
            .unwrap();
        assert_eq!(text, "id,x\n1,2\n");
        assert!(canon.is_absolute());
    }

    #[test]
    fn paths_outside_the_roots_are_refused() {
        let (_t, dir) = tempdir();
        let r = roots(&dir);
        for p in ["/etc/passwd", "/proc/self/environ"] {
            let e = r.open_file("file", p).unwrap_err();
            assert_eq!(e.kind, FileErrorKind::OutsideRoots, "{p}: {e}");
            assert!(e.to_string().starts_with("file: "), "{e}");
        }
        let climb = format!("{}/../../../../etc/passwd", dir.display());
        assert_eq!(
            r.open_file("file", &climb).unwrap_err().kind,
            FileErrorKind::OutsideRoots
        );
        assert_eq!(
            DataRoots::none()
                .open_file("file", "/etc/passwd")
                .unwrap_err()
                .kind,
            FileErrorKind::OutsideRoots
        );
    }

    #[test]
    fn symlinks_out_of_a_root_are_refused() {
        let (_t, dir) = tempdir();
        std::os::unix::fs::symlink("/etc/passwd", dir.join("link.csv")).unwrap();
        std::os::unix::fs::symlink("/etc", dir.join("etc")).unwrap();
        let r = roots(&dir);
        for p in [dir.join("link.csv"), dir.join("etc/passwd")] {
            let e = r.open_file("path", p.to_str().unwrap()).unwrap_err();
            assert_eq!(e.kind, FileErrorKind::OutsideRoots, "{e}");
        }
    }

    #[test]
    fn fifos_directories_and_devices_are_refused_without_blocking() {
        let (_t, dir) = tempdir();
        let fifo = dir.join("pipe.csv");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success(), "mkfifo");
        let r = roots(&dir);
        let t = std::time::Instant::now();
        let e = r.open_file("file", fifo.to_str().unwrap()).unwrap_err();
        assert_eq!(e.kind, FileErrorKind::NotRegular, "{e}");
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
        std::fs::create_dir(dir.join("sub")).unwrap();
        let e = r
            .open_file("file", dir.join("sub").to_str().unwrap())
            .unwrap_err();
        assert_eq!(e.kind, FileErrorKind::NotRegular, "{e}");
        let dev = DataRoots::new([PathBuf::from("/dev")], 1 << 20).unwrap();
        let e = dev.open_file("file", "/dev/zero").unwrap_err();
        assert_eq!(e.kind, FileErrorKind::NotRegular, "{e}");
    }

    #[test]
    fn large_and_binary_files_are_refused_without_echoing_them() {
        let (_t, dir) = tempdir();
        std::fs::write(dir.join("big"), vec![b'a'; 2 << 20]).unwrap();
        std::fs::write(dir.join("bin"), [b'o', b'k', 0xff, b's', b'e', b'c']).unwrap();
        let r = roots(&dir);
        let e = r
            .open_file("file", dir.join("big").to_str().unwrap())
            .unwrap_err();
        assert_eq!(e.kind, FileErrorKind::TooLarge, "{e}");
        let e = r
            .read_text("file", dir.join("bin").to_str().unwrap())
            .unwrap_err();
        assert!(
            e.reason.contains("offset 2") && !e.reason.contains("sec"),
            "{e}"
        );
    }

    #[test]
    fn write_dirs_stay_under_a_root() {
        let (_t, dir) = tempdir();
        let r = roots(&dir);
        let made = r
            .dir_for_write("path", dir.join("models/a").to_str().unwrap())
            .unwrap();
        assert!(made.is_dir());
        for p in ["/tmp/elsewhere-fate", "/etc", "relative/dir"] {
            assert_eq!(
                r.dir_for_write("path", p).unwrap_err().kind,
                FileErrorKind::OutsideRoots,
                "{p}"
            );
        }
        let climb = format!("{}/models/../../x", dir.display());
        assert!(r.dir_for_write("path", &climb).is_err());
        assert!(!Path::new("/tmp/elsewhere-fate").exists());
    }

    #[test]
    fn bad_roots_are_named() {
        let (_t, dir) = tempdir();
        std::fs::write(dir.join("f"), "x").unwrap();
        let e = DataRoots::new([dir.join("f")], 1).unwrap_err();
        assert!(e.contains("data root"), "{e}");
        let e = DataRoots::new([PathBuf::from("/")], 1).unwrap_err();
        assert!(e.contains("file system root"), "{e}");
        assert!(DataRoots::new([PathBuf::new()], 1).is_err());
        assert!(DataRoots::new([dir.clone()], 0).is_err());
    }

    fn tempdir() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let dir = std::fs::canonicalize(t.path()).unwrap();
        (t, dir)
    }
}
