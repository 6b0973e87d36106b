//! Writing files so that nothing written is lost: a reader, a crash or a power cut sees the old
//! file or the new one, never half of one.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to a temporary file in `path`'s folder (created if missing), flushes it to disk
/// and renames it over `path`. The temporary name is unique (tempfile), so two writers of the same
/// folder never share one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".tmp-");
    // tempfile's default is 0600; the result is an ordinary file (umask applies), readable by
    // whatever serves snapshots or ships models, as `std::fs::write` would have made it.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let mut tmp = builder.tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_files_and_leaves_no_temporary_behind() {
        let dir = std::env::temp_dir().join(format!("tagger-fsio-{}", std::process::id()));
        let path = dir.join("sub/card.json");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second, longer").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second, longer");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["card.json"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Same mode as a plain write makes under this umask.
            let plain = dir.join("plain");
            std::fs::write(&plain, b"x").unwrap();
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode();
            assert_eq!(mode(&path), mode(&plain));
        }
        // A folder in the way of the file: an error, not a panic, and the folder is untouched.
        assert!(write_atomic(&dir.join("sub"), b"x").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
