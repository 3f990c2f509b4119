//! Spinners for every wait (`indicatif`), on standard error so standard output stays the
//! command's result. On a terminal a spinner shows what is awaited and for how long; piped or
//! redirected, the spinner is hidden and its steps are plain lines. Messages and steps are
//! [`printable`]: they carry text from servers and providers (hashes, condition messages).

use crate::output::printable;
use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use logos_client::{Client, Wallet};
use logos_types::{Call, Receipt};
use std::{future::Future, time::Duration};

/// Time between spinner frames, ms.
const TICK_MS: u64 = 100;

/// A spinner with a message and the time since it started.
pub struct Spinner {
    bar: ProgressBar,
}

impl Spinner {
    /// Starts a spinner saying `message` (hidden when standard error is not a terminal).
    pub fn start(message: impl Into<String>) -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.set_message(printable(&message.into()));
        bar.enable_steady_tick(Duration::from_millis(TICK_MS));
        Self { bar }
    }

    /// Changes the message.
    pub fn set(&self, message: impl Into<String>) {
        self.bar.set_message(printable(&message.into()));
    }

    /// Prints a finished step above the spinner (a plain line when it is hidden).
    pub fn say(&self, line: &str) {
        let line = printable(line);
        match self.bar.is_hidden() {
            true => eprintln!("{line}"),
            false => self.bar.println(&line),
        }
    }

    /// Stops the spinner and removes it (as dropping it does, e.g. on an error).
    pub fn stop(self) {}
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// Awaits `work` behind a spinner saying `message`.
pub async fn wait<T>(
    message: impl Into<String>,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    let spinner = Spinner::start(message);
    let result = work.await;
    spinner.stop();
    result
}

/// Signs and submits `call`, and waits for its receipt in a finalized block behind a spinner
/// (`submitting <what>; waiting for finality`). Returns the receipt and the block's height; a
/// failed call is an error naming the module's error (see `Client::execute`).
pub async fn execute(
    client: &Client,
    wallet: &Wallet,
    call: Call,
    what: &str,
) -> Result<(Receipt, u64)> {
    let message = format!("{what}: submitted, waiting for finality");
    wait(message, async { Ok(client.execute(wallet, call).await?) }).await
}
