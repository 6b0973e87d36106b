//! `training`'s exit codes (README): 2 for usage and data errors, with what to do; 1 otherwise.

use std::process::{Command, Output};

fn training(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_training"))
        .args(args)
        .output()
        .expect("runs training")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_missing_data_set_exits_2_and_says_what_to_pass() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("split.json");
    let o = training(&[
        "split",
        "--data",
        "/no/such/data",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("pass --data DIR"), "{}", stderr(&o));
    assert!(!out.exists());
}

#[test]
fn a_missing_split_file_exits_2_and_names_the_command_that_makes_it() {
    let dir = tempfile::tempdir().unwrap();
    let o = training(&[
        "evaluate",
        "--data",
        dir.path().to_str().unwrap(),
        "--split",
        "/no/such/split.json",
        "--run",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("training split"), "{}", stderr(&o));
}

#[test]
fn a_bad_option_exits_2() {
    let o = training(&["train", "--data", "d", "--epochs", "many"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn lite_refuses_an_empty_batch_or_epoch_before_reading_data() {
    for (flag, value) in [
        ("--batch-size", "0"),
        ("--epoch-size", "0"),
        ("--epochs", "0"),
    ] {
        let o = training(&[
            "lite",
            "--data",
            "/nonexistent",
            "--run",
            "/nonexistent/run",
            "--name",
            "x",
            "--out",
            "/nonexistent/x.onnx",
            flag,
            value,
        ]);
        assert_eq!(o.status.code(), Some(2), "{flag}");
        assert!(stderr(&o).contains("at least 1"), "{flag}: {}", stderr(&o));
    }
}
