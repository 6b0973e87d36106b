//! Which failures the user fixes before running again: usage and data errors exit 2 (README),
//! anything else (a crash mid-run, a full disk) exits 1. Marked where the failure is recognised,
//! read back once in main.rs.

/// A failure that is the user's to fix; its message (unchanged by the marking) says what to do.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Options that do not fit together.
    #[error("{0:#}")]
    Usage(anyhow::Error),
    /// A data set, split, negatives or model file that is missing or not what it should be.
    #[error("{0:#}")]
    Data(anyhow::Error),
}

/// Marks `e` as a data error (exit 2).
pub fn data(e: anyhow::Error) -> anyhow::Error {
    Failure::Data(e).into()
}

/// Marks `e` as a usage error (exit 2).
pub fn usage(e: anyhow::Error) -> anyhow::Error {
    Failure::Usage(e).into()
}

/// 2 for usage and data errors anywhere in the chain, else 1.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    if e.chain().any(|c| c.is::<Failure>()) {
        2
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn data_errors_exit_2_through_more_context_and_keep_their_message() {
        let e = data(anyhow::anyhow!("no styles.csv: pass --data DIR"));
        assert_eq!(e.to_string(), "no styles.csv: pass --data DIR");
        let e = Err::<(), _>(e).context("loading the split").unwrap_err();
        assert_eq!(exit_code(&e), 2);
        assert_eq!(exit_code(&usage(anyhow::anyhow!("--a with --b"))), 2);
        assert_eq!(exit_code(&anyhow::anyhow!("disk full")), 1);
    }
}
