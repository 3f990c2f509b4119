//! `logos keys …`: the keystore (see `logos_client::keystore`).

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
    },
    /// List keys.
    List,
    /// Show a key's public key and address.
    Show {
        /// Name of the key.
        name: String,
    },
}

/// Runs `logos keys …`.
pub fn run(command: KeysCommand, keystore: Option<PathBuf>) -> Result<()> {
    let dir = keystore::directory(keystore);
    match command {
        KeysCommand::New { name } => {
            let key = keystore::generate()?;
            let passphrase = keystore::new_passphrase(&dir.join(format!("{name}.key")))?;
            let path = keystore::save(&dir, &name, &key, &passphrase)?;
            crate::client::print_json(&PublicInfo::of(&name, &key))?;
            eprintln!("saved to {}", path.display());
        }
        KeysCommand::List => crate::client::print_json(&keystore::list(&dir)?)?,
        KeysCommand::Show { name } => {
            crate::client::print_json(&PublicInfo::of(&name, &keystore::load(&dir, &name)?))?
        }
    }
    Ok(())
}
