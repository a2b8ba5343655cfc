//! Running the `lab` binary from the tests.
#![allow(dead_code)] // each test binary uses part of it

pub mod machines;

use std::path::Path;

/// `lab ARGS` in `dir`, without colour and without the caller's ssh-agent: (exit code, stdout,
/// stderr).
pub fn run_in(dir: &Path, args: &[&str]) -> (i32, String, String) {
    run_with(dir, &[], args)
}

/// [`run_in`] with more environment variables.
pub fn run_with(dir: &Path, env: &[(&str, &Path)], args: &[&str]) -> (i32, String, String) {
    let out = assert_cmd::Command::cargo_bin("lab")
        .unwrap()
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .env_remove("SSH_AUTH_SOCK")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// miette's report on one line: the frame and the wrapping taken out.
pub fn flat(s: &str) -> String {
    s.lines()
        .map(|l| l.trim().trim_start_matches(['×', '│', 'x']).trim())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The lines of `out` that report a disagreement between the capture and the counters (the
/// whole output is printed before; this keeps the failure's own message short enough to read).
#[allow(dead_code)]
pub fn disagreements(out: &str) -> Vec<&str> {
    out.lines().filter(|l| l.contains("DISAGREE")).collect()
}
