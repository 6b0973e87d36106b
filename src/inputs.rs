//! What the user named on the command line, expanded: files, folders (recursive, sorted) and `-`
//! for image bytes on stdin.

use std::io::Read;
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
            Input::File(p) => {
                std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
            }
            Input::Stdin => {
                let mut buf = vec![];
                std::io::stdin()
                    .lock()
                    .read_to_end(&mut buf)
                    .map_err(|e| format!("cannot read stdin: {e}"))?;
                Ok(buf)
            }
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

fn walk(dir: &Path, out: &mut Vec<Input>) {
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
            walk(&p, out);
        } else if is_image_path(&p) {
            out.push(Input::File(p));
        }
    }
}

/// Expands the arguments in order; folders contribute their images sorted by path.
pub fn expand(args: &[String]) -> Vec<Input> {
    let mut out = vec![];
    for a in args {
        if a == "-" {
            out.push(Input::Stdin);
            continue;
        }
        let p = PathBuf::from(a);
        if p.is_dir() {
            walk(&p, &mut out);
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
    fn missing_path_is_an_invalid_input_not_a_panic() {
        let inputs = expand(&["/no/such/file.jpg".into(), "-".into()]);
        assert!(matches!(&inputs[0], Input::Invalid(_, why) if why.contains("no such file")));
        assert_eq!(inputs[1], Input::Stdin);
    }
}
