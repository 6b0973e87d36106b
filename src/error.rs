//! What can go wrong in a `tag` command, by kind: the binary maps each kind to its exit code in
//! one place (`src/bin/tag/main.rs`), the libraries and subcommands only say which kind it is.

use std::io;

/// A failed `tag` command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line does not make sense (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The station configuration (TOML or options over it) is unusable (exit 2).
    #[error("{0:#}")]
    Config(anyhow::Error),
    /// The model cannot be loaded or run (exit 2).
    #[error("{0:#}")]
    Model(anyhow::Error),
    /// The station cannot start or run: a source that cannot be opened, a verdict that cannot be
    /// written (exit 2).
    #[error("{0:#}")]
    Station(anyhow::Error),
    /// Some inputs could not be tagged; each was reported and the others were tagged (exit 1).
    #[error("{failed} of {total} inputs failed")]
    Inputs { failed: usize, total: usize },
    /// Nothing to tag was found in what was named (exit 1).
    #[error("{0}")]
    NoInputs(String),
    /// A live source was lost for good during a run; what came before was reported (exit 1).
    #[error("source failed: {0}")]
    SourceLost(String),
    /// Results cannot be written (exit 1; a reader that closed the pipe is no failure).
    #[error("cannot write output: {0}")]
    Output(#[source] io::Error),
}

impl Error {
    /// 1 when the command did part of its work (the README's "some inputs failed"), 2 when it
    /// could not start (usage, configuration, model).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Config(_) | Error::Model(_) | Error::Station(_) => 2,
            Error::Inputs { .. } | Error::NoInputs(_) | Error::SourceLost(_) | Error::Output(_) => {
                1
            }
        }
    }

    /// A reader that went away (`tag photos/ | head -1`) got what it wanted: not a failure.
    pub fn is_closed_pipe(&self) -> bool {
        matches!(self, Error::Output(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_the_readme_exit_codes() {
        assert_eq!(Error::Usage("x".into()).exit_code(), 2);
        assert_eq!(Error::Model(anyhow::anyhow!("x")).exit_code(), 2);
        assert_eq!(
            Error::Inputs {
                failed: 1,
                total: 2
            }
            .exit_code(),
            1
        );
        let closed = Error::Output(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(closed.is_closed_pipe());
        assert!(!Error::Output(io::Error::from(io::ErrorKind::StorageFull)).is_closed_pipe());
    }
}
