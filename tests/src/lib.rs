//! Helpers for the workspace-level integration tests: where the built binaries and the
//! third-party test vectors are.
//!
//! The binaries are found next to the test executable (`target/<profile>/`); `cargo test` builds
//! `sipshard` because the engine crate has integration tests of its own.

use std::path::PathBuf;
use std::process::Command;

/// Path of a binary of this workspace, built by the same `cargo test` run.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("test executable lives in target/<profile>/deps");
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "{} not built; run `cargo build --workspace` or `cargo test --workspace`",
        p.display()
    );
    p
}

/// A command running a workspace binary.
pub fn command(name: &str) -> Command {
    Command::new(bin_path(name))
}

/// The third-party vectors folder (`../shared/vectors` from the workspace root, or
/// `$SIPSHARD_VECTORS`), or `None` after printing "skipped: vectors not found".
pub fn vectors() -> Option<PathBuf> {
    let p = std::env::var_os("SIPSHARD_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors")));
    if p.join("rfc4475/INDEX.tsv").is_file() {
        Some(p)
    } else {
        eprintln!("skipped: vectors not found at {}", p.display());
        None
    }
}
