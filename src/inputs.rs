//! What the user named on the command line, expanded: files, folders (recursive, sorted) and `-`
//! for image bytes on stdin. Folders contribute regular files only (a FIFO would block, a device
//! never end: they are reported and skipped); a symlinked folder is walked once, so links back
//! up the tree cannot loop. Reads are bounded by [`limits`].

use crate::limits;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Extensions picked up when walking folders (files named explicitly are decoded by content).
pub const IMAGE_EXTENSIONS: [&str; 5] = ["jpg", "jpeg", "png", "webp", "bmp"];

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    File(PathBuf),
    Stdin,
    /// A path that cannot be used, with the reason; reported as that input's error.
    Invalid(String, String),
}

impl Input {
    /// How the input is named in outputs.
    pub fn name(&self) -> String {
        match self {
            Input::File(p) => p.display().to_string(),
            Input::Stdin => "-".into(),
            Input::Invalid(n, _) => n.clone(),
        }
    }

    /// The raw bytes, or an error message naming the input.
    pub fn read(&self) -> Result<Vec<u8>, String> {
        match self {
            Input::File(p) => limits::read_file(p, limits::MAX_IMAGE_BYTES),
            Input::Stdin => limits::read_bounded(
                std::io::stdin().lock(),
                limits::MAX_IMAGE_BYTES,
                "the image on stdin",
            ),
            Input::Invalid(_, why) => Err(why.clone()),
        }
    }
}

/// True for the file extensions `tag` reads (case-insensitive).
pub fn is_image_path(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .map(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        .unwrap_or(false)
}

fn walk(dir: &Path, out: &mut Vec<Input>, seen: &mut HashSet<PathBuf>) {
    // The real path: a folder reached twice (through a symlink, or a link to `.`) is walked once.
    if let Ok(real) = std::fs::canonicalize(dir) {
        if !seen.insert(real) {
            return;
        }
    }
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => {
            out.push(Input::Invalid(
                dir.display().to_string(),
                format!("cannot list folder {}: {e}", dir.display()),
            ));
            return;
        }
    };
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out, seen);
        } else if is_image_path(&p) {
            match limits::not_regular(&p) {
                None => out.push(Input::File(p)),
                Some(why) => out.push(Input::Invalid(p.display().to_string(), why)),
            }
        }
    }
}

/// Expands the arguments in order; folders contribute their images sorted by path.
pub fn expand(args: &[String]) -> Vec<Input> {
    let mut out = vec![];
    let mut seen = HashSet::new();
    for a in args {
        if a == "-" {
            out.push(Input::Stdin);
            continue;
        }
        let p = PathBuf::from(a);
        if p.is_dir() {
            walk(&p, &mut out, &mut seen);
        } else if p.exists() {
            out.push(Input::File(p));
        } else {
            out.push(Input::Invalid(
                a.clone(),
                format!("{a}: no such file or folder"),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_are_walked_recursively_and_sorted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        for f in ["b.jpg", "a.PNG", "notes.txt", "sub/c.webp"] {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        let inputs = expand(&[dir.path().display().to_string()]);
        let names: Vec<String> = inputs
            .iter()
            .map(|i| i.name().rsplit('/').next().unwrap().to_string())
            .collect();
        assert_eq!(names, vec!["a.PNG", "b.jpg", "c.webp"]);
    }

    #[test]
    fn symlink_loops_are_walked_once_and_fifos_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a.jpg"), b"x").unwrap();
        std::os::unix::fs::symlink(".", d.join("self1")).unwrap();
        std::os::unix::fs::symlink(".", d.join("self2")).unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::os::unix::fs::symlink("..", d.join("sub/up")).unwrap();
        let fifo = d.join("pipe.jpg");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        let inputs = expand(&[d.display().to_string()]);
        let files = inputs
            .iter()
            .filter(|i| matches!(i, Input::File(_)))
            .count();
        assert_eq!(files, 1, "{inputs:?}");
        if made.map(|s| s.success()).unwrap_or(false) {
            assert!(inputs.iter().any(
                |i| matches!(i, Input::Invalid(n, why) if n.ends_with("pipe.jpg") && why.contains("FIFO"))
            ));
        }
    }

    #[test]
    fn devices_and_endless_inputs_are_refused_not_read() {
        let e = Input::File("/dev/zero".into()).read().unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
    }

    #[test]
    fn missing_path_is_an_invalid_input_not_a_panic() {
        let inputs = expand(&["/no/such/file.jpg".into(), "-".into()]);
        assert!(matches!(&inputs[0], Input::Invalid(_, why) if why.contains("no such file")));
        assert_eq!(inputs[1], Input::Stdin);
    }
}
