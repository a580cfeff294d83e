//! `webhook-guard`: receive, send, sign and verify webhooks from the shell.
//!
//! - `listen`: a local receiver that verifies, deduplicates and prints each
//!   event, and answers 401 with the reason for bad ones;
//! - `send`: signs and delivers a test event (built-in events get a realistic
//!   sample payload), printing the status and response time;
//! - `sign`: prints the signature headers for a body;
//! - `verify`: checks a captured request and, when it fails, explains why.
//!
//! Exit codes: 0 success, 1 verification or delivery failed, 2 usage or
//! unreadable input.

mod capture;
mod keys;
mod listen;
mod output;
mod send;
mod sign;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code: verification failed, a delivery was refused, or the listener
/// could not start.
const EXIT_FAILED: u8 = 1;
/// Exit code: bad arguments or unreadable input.
const EXIT_USAGE: u8 = 2;

const AFTER_HELP: &str = "\
Try it (two terminals):
  webhook-guard listen --port 3000 --secret my-secret
  webhook-guard send http://127.0.0.1:3000/webhooks --secret my-secret --event ingestion.completed

Exit codes:
  0  success (verified, every delivery accepted)
  1  verification failed, a delivery was refused or failed, or the listener could not start
  2  usage error: bad arguments or unreadable input

The secret can also come from the WEBHOOK_SECRET environment variable, which keeps it out of
the shell history. It is never printed, and neither is an expected signature.";

/// Receive, send, sign and verify webhooks for every scheme webhook-guard
/// supports: native, native-body-only, standard (Standard Webhooks / Svix),
/// github, stripe, slack and shopify.
#[derive(Debug, Parser)]
#[command(name = "webhook-guard", version, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Listen(listen::ListenArgs),
    Send(send::SendArgs),
    Sign(sign::SignArgs),
    Verify(verify::VerifyArgs),
}

/// A failure that ends the program with a message and an exit code.
#[derive(Debug)]
pub(crate) struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    /// Bad arguments or unreadable input (exit code 2).
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    /// The check or delivery failed (exit code 1).
    pub(crate) fn failed(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_FAILED,
            message: message.into(),
        }
    }

    /// Exit code 1 with nothing more to say: the output already explained.
    pub(crate) fn silent() -> Self {
        Self::failed("")
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Listen(args) => listen::run(args),
        Command::Send(args) => send::run(args),
        Command::Sign(args) => sign::run(args),
        Command::Verify(args) => verify::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if !failure.message.is_empty() {
                eprintln!("webhook-guard: {}", failure.message);
            }
            ExitCode::from(failure.code)
        }
    }
}
