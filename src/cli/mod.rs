//! cli: the only module that prints and decides exit codes. It parses
//! arguments, runs the library's stages, and renders their values and events.

mod args;
mod commands;
pub(crate) mod interrupt;
mod selector;
mod views;

/// `print!` that never panics: a closed pipe (`lifeboat plan | head`) ends
/// the output quietly instead of aborting the command mid-way.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}
pub(crate) use out;

pub use args::Cli;

use clap::Parser;
use std::io::IsTerminal;

/// Exit codes, as Terraform uses them (and `status`'s own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success,
    Error,
    /// `--detailed-exitcode` and changes are pending.
    Changes,
    /// `fmt --check` found files to format.
    Unformatted,
    /// `drill`: the drill ran, and a check failed or a goal was missed.
    DrillFailed,
    /// `status`: what the status says (`status --help` lists the codes).
    Status(crate::status::Verdict),
}

impl Exit {
    /// The process's exit code.
    pub fn code(self) -> i32 {
        match self {
            Exit::Success => 0,
            Exit::Error => 1,
            Exit::Changes => 2,
            Exit::Unformatted => 3,
            Exit::DrillFailed => 4,
            Exit::Status(verdict) => status_code(verdict),
        }
    }
}

/// The exit code of `status` for each verdict, documented in `status
/// --help` and docs/monitoring.md; the worse the verdict, the higher.
fn status_code(verdict: crate::status::Verdict) -> i32 {
    use crate::status::Verdict;
    match verdict {
        Verdict::Ok => 0,
        Verdict::SizeChanged => 2,
        Verdict::Failed => 3,
        Verdict::Late => 4,
        Verdict::Missing => 5,
        Verdict::RepositoryUnreachable => 6,
    }
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
    // Commands that only print may simply end when their reader goes away
    // (`lifeboat man | head`); the others keep running and write nothing more.
    if cli.command.only_prints() {
        // SAFETY: restoring the default disposition of one signal, before any thread exists.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("Error: cannot start the async runtime: {error}");
            return Exit::Error.code();
        }
    };
    let _guard = runtime.enter();
    interrupt::install();
    let result = runtime.block_on(commands::run(cli, views::Style { color }));
    if interrupt::interrupted() {
        // The cleanup after SIGINT/SIGTERM removes this run's helpers and
        // exits with the signal's code; the command's own ending (often an
        // error, its helper gone) must not overtake it.
        runtime.block_on(std::future::pending::<()>());
    }
    match result {
        Ok(exit) => exit.code(),
        Err(error) => {
            report(error, color);
            Exit::Error.code()
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
