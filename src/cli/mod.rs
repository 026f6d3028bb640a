//! cli: the only module that prints and decides exit codes. It parses
//! arguments, runs the library's stages, and renders their values and events.

mod args;
mod commands;
mod views;

pub use args::Cli;

use clap::Parser;
use std::io::IsTerminal;

/// Exit codes, as Terraform uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    Error = 1,
    /// `--detailed-exitcode` and changes are pending.
    Changes = 2,
    /// `fmt --check` found files to format.
    Unformatted = 3,
}

/// Errors as the user sees them: spec diagnostics render with their source
/// lines; everything else as a message with its causes.
#[derive(Debug)]
pub enum CliError {
    Spec(crate::spec::Diagnostics),
    Message(String),
}

impl<E: std::error::Error> From<E> for CliError {
    fn from(error: E) -> Self {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = cause.source();
        }
        CliError::Message(message)
    }
}

/// Every rendering of a plan that `show`, `plan` and `--format markdown`
/// print (human with and without color, Markdown, JSON): lets the fuzz
/// targets drive a saved plan through the views as the commands do.
pub fn render_plan_every_way(plan: &crate::plan::Plan) -> Vec<String> {
    vec![
        views::render_plan(plan, views::Style { color: false }),
        views::render_plan(plan, views::Style { color: true }),
        views::markdown::render(plan),
        plan.to_saved(),
    ]
}

/// Runs lifeboat with the process arguments; returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() { 1 } else { 0 };
        }
    };
    let color =
        !cli.no_color && std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("Error: cannot start the async runtime: {error}");
            return Exit::Error as i32;
        }
    };
    match runtime.block_on(commands::run(cli, views::Style { color })) {
        Ok(exit) => exit as i32,
        Err(error) => {
            report(error, color);
            Exit::Error as i32
        }
    }
}

fn report(error: CliError, color: bool) {
    match error {
        CliError::Spec(diagnostics) => {
            eprint!("{}", diagnostics.render(color));
        }
        CliError::Message(message) => {
            if color {
                eprintln!("\x1b[31;1mError:\x1b[0m {message}");
            } else {
                eprintln!("Error: {message}");
            }
        }
    }
}
