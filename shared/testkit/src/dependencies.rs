//! What a package links: its normal dependency tree from `cargo tree`, for
//! tests that keep a deployable crate light.

use std::process::Command;

/// The names of the crates in `package`'s normal (not dev, not build)
/// dependency tree, run from `dir` (a directory of the workspace).
///
/// # Panics
/// When `cargo tree` fails, or answers a tree without `expected` in it (so an
/// empty answer cannot pass for a light one).
pub fn normal_dependencies(package: &str, dir: &str, expected: &str) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "tree",
            "--package",
            package,
            "--edges",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
            "--locked",
            "--offline",
        ])
        .current_dir(dir)
        .output()
        .expect("running cargo tree");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8(output.stdout).unwrap();
    let crates: Vec<String> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect();
    assert!(crates.iter().any(|c| c == expected), "{tree}");
    crates
}

/// The crates of `crates` whose names start with one of `forbidden`.
pub fn forbidden<'a>(crates: &'a [String], forbidden: &[&str]) -> Vec<&'a str> {
    crates
        .iter()
        .filter(|name| forbidden.iter().any(|f| name.starts_with(f)))
        .map(String::as_str)
        .collect()
}
