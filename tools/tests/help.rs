//! Every subcommand's `--help` shows its long description, not only the one-line summary
//! (a doc comment on the subcommand variant used to replace the arguments' `long_about`).

use std::process::Command;

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_etch"))
        .args(args)
        .output()
        .expect("run etch");
    assert!(out.status.success(), "{args:?}");
    String::from_utf8(out.stdout).expect("utf-8")
}

/// The subcommands listed by `etch --help` (the names in its Commands section).
fn subcommands() -> Vec<String> {
    let top = help(&["--help"]);
    let section = top.split("Commands:").nth(1).expect("a Commands section");
    section
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|n| n != "help")
        .collect()
}

#[test]
fn long_help_is_longer_than_short_help() {
    let names = subcommands();
    assert!(names.len() >= 15, "{names:?}");
    for name in &names {
        let short = help(&[name, "-h"]);
        let long = help(&[name, "--help"]);
        let first_short = short.lines().next().unwrap_or("");
        let first_long = long.lines().next().unwrap_or("");
        assert_ne!(
            first_short, first_long,
            "`etch {name} --help` starts with the one-line summary instead of its description"
        );
        assert!(long.len() > short.len(), "etch {name}");
    }
}
