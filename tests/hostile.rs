//! Inputs an attacker or a broken camera gives, one test per class: endless files,
//! loops and FIFOs in folders, oversized stdin, out-of-range settings, a reader that goes away.
//! Each must end with a clear message and exit 0/1/2, never hang or panic; memory is bounded by
//! refusing before reading (limits.rs), which the tests see as prompt refusals.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

fn no_panic(o: &std::process::Output) {
    assert!(!stderr(o).contains("panicked"), "{}", stderr(o));
    assert_ne!(o.status.code(), Some(101), "{}", stderr(o));
}

#[test]
fn endless_files_are_refused_not_read() {
    // /dev/zero named directly, and through a symlink inside a folder.
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.jpg")).unwrap();
    std::fs::copy(example("shoes.jpg"), dir.path().join("shoes.jpg")).unwrap();
    let o = tag(&["/dev/zero", dir.path().to_str().unwrap()]);
    no_panic(&o);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("/dev/zero is a device"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("zero.jpg is a device"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).contains("shoes.jpg\tShoes"), "{}", stdout(&o));
    let o = tag(&["--model", "/dev/zero", &example("shoes.jpg")]);
    no_panic(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("model /dev/zero is a device"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn folder_loops_end_and_fifos_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(example("shoes.jpg"), d.join("shoes.jpg")).unwrap();
    std::os::unix::fs::symlink(".", d.join("loop1")).unwrap();
    std::os::unix::fs::symlink(".", d.join("loop2")).unwrap();
    let fifo = Command::new("mkfifo")
        .arg(d.join("pipe.jpg"))
        .status()
        .is_ok_and(|s| s.success());
    let o = tag(&[d.to_str().unwrap()]);
    no_panic(&o);
    assert_eq!(
        stdout(&o)
            .lines()
            .filter(|l| l.contains("shoes.jpg"))
            .count(),
        1,
        "{}",
        stdout(&o)
    );
    if fifo {
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains("FIFO"), "{}", stderr(&o));
    }
}

#[test]
fn stdin_is_bounded() {
    let mut child = common::tag_command()
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let chunk = vec![0u8; 1 << 20];
        // 80 MiB, over the 64 MiB limit; `tag` may stop reading early.
        for _ in 0..80 {
            if stdin.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap();
    no_panic(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("stdin is larger than 64 MiB"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn numeric_settings_out_of_range_are_usage_errors() {
    let shoes = example("shoes.jpg");
    for args in [
        vec!["--threads", "1000", shoes.as_str()],
        vec!["--threads", "0", shoes.as_str()],
        vec!["--top-k", "0", shoes.as_str()],
        vec!["--top-k", "99", shoes.as_str()],
        vec!["--batch-size", "0", shoes.as_str()],
        vec!["bench", "--iterations", "1000000000000"],
        vec!["bench", "--iterations", "0"],
        vec!["watch", "--source", shoes.as_str(), "--fps", "1e-30"],
        vec![
            "watch",
            "--source",
            shoes.as_str(),
            "--stats-interval",
            "1e30",
        ],
        vec![
            "watch",
            "--source",
            shoes.as_str(),
            "--stats-interval",
            "NaN",
        ],
    ] {
        let o = tag(&args);
        no_panic(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(
            e.contains("must be between") || e.contains("more than the model's"),
            "{args:?}: {e}"
        );
    }
}

#[test]
fn a_closed_pipe_ends_tagging_quietly() {
    // Enough files that the output cannot all sit in the pipe's buffer.
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(example("shoes.jpg")).unwrap();
    for i in 0..3000 {
        std::fs::write(
            dir.path()
                .join(format!("{i:05}-a-rather-long-file-name.jpg")),
            &bytes,
        )
        .unwrap();
    }
    let mut child = common::tag_command()
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // `| head -1`: the reader goes away after one line.
    assert!(first.contains("\tShoes\t"), "{first}");
    let o = child.wait_with_output().unwrap();
    no_panic(&o);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
}

#[test]
fn control_characters_in_file_names_stay_on_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a\tb\nfake\tShoes\t1.000.jpg");
    std::fs::copy(example("bags.jpg"), &p).unwrap();
    let o = tag(&[p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert_eq!(out.trim_end().split('\t').count(), 3, "{out}");
    assert!(
        out.contains("a\\tb\\nfake\\tShoes\\t1.000.jpg\tBags\t"),
        "{out}"
    );
}

#[test]
fn ctrl_c_during_bench_keeps_the_partial_report() {
    let child = common::tag_command()
        .args(["bench", "--iterations", "10000000", "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let o = child.wait_with_output().unwrap();
    no_panic(&o);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let n = r["iterations"].as_u64().unwrap();
    assert!(n > 0 && n < 10_000_000, "{r}");
    assert!(stderr(&o).contains("stopped after"), "{}", stderr(&o));
}

#[test]
fn ctrl_c_ends_a_slowly_paced_replay_promptly() {
    // One frame every 100 s: the wait must not delay a stop.
    let child = common::tag_command()
        .args([
            "watch",
            "--source",
            examples().to_str().unwrap(),
            "--fps",
            "0.01",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let started = std::time::Instant::now();
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let o = child.wait_with_output().unwrap();
    no_panic(&o);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "took {:?} to stop",
        started.elapsed()
    );
}
