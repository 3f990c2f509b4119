//! `logos keys …`: the keystore (see `logos_client::keystore`).

use crate::{output::Format, views};
use anyhow::Result;
use clap::Subcommand;
use logos_client::keystore::{self, PublicInfo};
use std::path::PathBuf;

/// `logos keys …`
#[derive(Subcommand)]
pub enum KeysCommand {
    /// Generate a new key, encrypted with a passphrase ($LOGOS_PASSPHRASE, --passphrase-file,
    /// or asked twice on the terminal).
    New {
        /// Name of the key.
        name: String,
        #[command(flatten)]
        format: Format,
    },
    /// List keys.
    List {
        #[command(flatten)]
        format: Format,
    },
    /// Show a key's public key and address.
    Show {
        /// Name of the key.
        name: String,
        #[command(flatten)]
        format: Format,
    },
}

/// Runs `logos keys …`.
pub fn run(command: KeysCommand, keystore: Option<PathBuf>) -> Result<()> {
    let dir = keystore::directory(keystore);
    match command {
        KeysCommand::New { name, format } => {
            let key = keystore::generate()?;
            let passphrase = keystore::new_passphrase(&dir.join(format!("{name}.key")))?;
            let path = keystore::save(&dir, &name, &key, &passphrase)?;
            format.print(&PublicInfo::of(&name, &key))?;
            eprintln!("saved to {}", path.display());
        }
        KeysCommand::List { format } => format.print_with(&keystore::list(&dir)?, views::keys)?,
        KeysCommand::Show { name, format } => {
            format.print(&PublicInfo::of(&name, &keystore::load(&dir, &name)?))?
        }
    }
    Ok(())
}
