//! `etch completions SHELL`: the shell's tab completion of `etch`'s subcommands and options,
//! generated from the same command definitions clap parses (clap_complete).

use std::io;
use std::process::ExitCode;

/// Arguments of `etch completions`.
#[derive(clap::Args)]
#[command(
    long_about = "Prints a completion script for SHELL on stdout: Tab then completes etch's \
subcommands, options and their values.\n\n\
Install it once:\n  \
bash: etch completions bash > ~/.local/share/bash-completion/completions/etch\n  \
zsh:  etch completions zsh > ~/.zfunc/_etch  (with fpath+=~/.zfunc before compinit in ~/.zshrc)\n  \
fish: etch completions fish > ~/.config/fish/completions/etch.fish\n\
then open a new terminal."
)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Runs `etch completions`: `command` is the whole `etch` command line definition.
pub fn run(args: CompletionsArgs, mut command: clap::Command) -> io::Result<ExitCode> {
    let name = command.get_name().to_string();
    // Into memory first: clap_complete panics on a failed write (a closed pipe, `| head`).
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, name, &mut script);
    io::Write::write_all(&mut io::stdout().lock(), &script)?;
    Ok(ExitCode::SUCCESS)
}
