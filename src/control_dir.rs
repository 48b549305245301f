//! The control directory: where the workers' control sockets live, so whoever can
//! replace entries in it can stand in for the daemon (rename its socket, bind their own
//! in its place, and answer signaling). The daemon creates a missing one itself and
//! refuses one it does not own, one the group or others may write to, and a symlink
//! (which would make the target's owner, not the link's, the one that counts).

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

use crate::config::ConfigError;

/// The mode of a control directory the daemon creates: the group (signaling's user) may
/// reach the sockets, nobody but the daemon may add, remove or rename entries.
pub const CREATED_MODE: u32 = 0o750;

/// Creates `dir` if it is missing and checks it is safe to put control sockets in.
/// Problems are configuration errors naming the `control` key.
pub fn prepare(dir: &Path) -> Result<(), ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        key: "control",
        reason: format!("{}: {reason}", dir.display()),
    };
    match std::fs::symlink_metadata(dir) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            create(dir).map_err(|e| invalid(format!("cannot create it: {e}")))?;
        }
        Err(e) => return Err(invalid(format!("cannot inspect it: {e}"))),
    }
    let meta =
        std::fs::symlink_metadata(dir).map_err(|e| invalid(format!("cannot inspect it: {e}")))?;
    check(&meta, effective_uid()).map_err(invalid)
}

/// Creates the missing parents with the default mode and `dir` itself with
/// [`CREATED_MODE`] (set explicitly: the umask would narrow it).
fn create(dir: &Path) -> io::Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new().recursive(true).create(parent)?;
    }
    match std::fs::DirBuilder::new().mode(CREATED_MODE).create(dir) {
        Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(CREATED_MODE)),
        // Someone else created it meanwhile: `check` judges what is there now.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Why `meta` (from `symlink_metadata`) is not a safe control directory for `uid`.
fn check(meta: &std::fs::Metadata, uid: u32) -> Result<(), String> {
    let kind = meta.file_type();
    if kind.is_symlink() {
        return Err("is a symlink; give the directory itself".into());
    }
    if !kind.is_dir() {
        return Err("is not a directory".into());
    }
    if meta.uid() != uid {
        return Err(format!(
            "is owned by uid {}, not by the daemon's uid {uid}",
            meta.uid()
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(format!(
            "is writable by its group or others (mode {mode:04o}); use 0750 or 0700"
        ));
    }
    Ok(())
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid takes no arguments, touches no memory and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_a_missing_directory_owner_and_group_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/sfu");
        prepare(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().mode() & 0o7777;
        assert_eq!(mode, CREATED_MODE);
        // A second start accepts what the first created.
        prepare(&dir).unwrap();
    }

    #[test]
    fn refuses_writable_and_foreign_directories_and_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sfu");
        std::fs::create_dir(&dir).unwrap();
        for mode in [0o770, 0o1777, 0o702] {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = prepare(&dir).unwrap_err().to_string();
            assert!(
                err.contains("`control`") && err.contains("writable"),
                "{err}"
            );
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let meta = std::fs::symlink_metadata(&dir).unwrap();
        let err = check(&meta, meta.uid().wrapping_add(1)).unwrap_err();
        assert!(err.contains("owned by uid"), "{err}");
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let err = prepare(&link).unwrap_err().to_string();
        assert!(err.contains("symlink"), "{err}");
    }
}
