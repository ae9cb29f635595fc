//! The `sipshard` binary's usage errors. (Its presence also makes `cargo test` build the binary
//! that the workspace-level tests in `tests/` drive.)

use std::process::Command;

fn sipshard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sipshard"))
}

#[test]
fn usage_errors_exit_2() {
    let out = sipshard().arg("parse").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = sipshard().args(["parse", "--bogus", "x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = sipshard()
        .args(["parse", "/nonexistent/sipshard-test-file"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

#[test]
fn ctl_help_lists_every_control_method() {
    let out = sipshard().args(["ctl", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for m in sipshard_core::shard::control::METHODS {
        assert!(
            help.contains(m.name) && help.contains(m.help),
            "{}: {help}",
            m.name
        );
    }
}
