//! The `provider "logos"` block: its schema, its checks and `configure`, which connects.

use crate::{
    attribute,
    connection::{Connection, Settings, Shared},
    data::{CatalogSource, PricesSource},
    lease::LeaseResource,
};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::{collections::HashMap, path::PathBuf};
use tf_provider::{
    map,
    schema::{Attribute, AttributeConstraint, AttributeType, Block, Description, Schema},
    value::{ValueEmpty, ValueString},
    Diagnostics, DynamicDataSource, DynamicResource, Provider,
};

/// Longest value of a provider setting, bytes (a URL or a path).
pub const SETTING_MAX_BYTES: usize = 4_096;

/// The provider block as Terraform sends it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ProviderConfig<'a> {
    /// Node RPC endpoint.
    pub rpc: ValueString<'a>,
    /// Keystore directory.
    pub keystore: ValueString<'a>,
    /// Signing key name.
    pub key: ValueString<'a>,
    /// Genesis file for proven reads.
    pub genesis: ValueString<'a>,
}

impl ProviderConfig<'_> {
    /// The settings, or why they are refused (each setting at most [`SETTING_MAX_BYTES`]; the
    /// endpoint an `http://` or `https://` URL; a key name without path separators).
    pub fn settings(&self) -> Result<Settings, String> {
        let text = |value: &ValueString<'_>, name: &str| -> Result<Option<String>, String> {
            if value.is_unknown() {
                // Left unset it would quietly mean the default endpoint, or no proofs.
                return Err(format!("{name} must be known when planning"));
            }
            match value.as_ref_option() {
                Some(text) if text.len() > SETTING_MAX_BYTES => {
                    Err(format!("{name} is over {SETTING_MAX_BYTES} bytes"))
                }
                Some(text) => Ok(Some(text.to_string())),
                None => Ok(None),
            }
        };
        let rpc = text(&self.rpc, "rpc")?;
        if let Some(url) = &rpc {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!("rpc {url:?} is not an http:// or https:// URL"));
            }
        }
        let key = text(&self.key, "key")?;
        if let Some(name) = &key {
            let plain = !name.is_empty() && !name.contains(['/', '\\']) && !name.starts_with('.');
            if !plain {
                return Err(format!(
                    "key {name:?} is not a key name (see `logos keys list`)"
                ));
            }
        }
        Ok(Settings {
            rpc,
            keystore: text(&self.keystore, "keystore")?.map(PathBuf::from),
            key,
            genesis: text(&self.genesis, "genesis")?.map(PathBuf::from),
        })
    }
}

/// The Logos provider: a [`Shared`] connection its resources and data sources use.
#[derive(Clone, Default)]
pub struct LogosProvider {
    shared: Shared,
}

fn setting(description: &str) -> Attribute {
    attribute(
        AttributeType::String,
        AttributeConstraint::Optional,
        description,
    )
}

#[async_trait]
impl Provider for LogosProvider {
    type Config<'a> = ProviderConfig<'a>;
    type MetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(Schema {
            version: 1,
            block: Block {
                version: 1,
                description: Description::plain(
                    "The Logos sub0layer: lease environments from its catalog, paid per block.",
                ),
                attributes: map! {
                    "rpc" => setting("Node RPC endpoint (default http://127.0.0.1:8545)."),
                    "keystore" => setting("Keystore directory (default ~/.logos/keys)."),
                    "key" => setting("Name of the tenant's key in the keystore (leases need one; \
                        its passphrase comes from LOGOS_PASSPHRASE or LOGOS_PASSPHRASE_FILE)."),
                    "genesis" => setting("Genesis file: what the provider decides on (the \
                        catalog and prices it pays by, the leases it reads, extends and closes) is \
                        proven against its validators. Without it the RPC server is trusted."),
                },
                ..Default::default()
            },
        })
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: Self::Config<'a>) -> Option<()> {
        let settings = [&config.rpc, &config.keystore, &config.key, &config.genesis];
        if settings.iter().any(|value| value.is_unknown()) {
            // Checked again, known, when the provider is configured.
            return Some(());
        }
        if let Err(reason) = config.settings() {
            diags.root_error("invalid provider settings", reason);
        }
        Some(())
    }

    async fn configure<'a>(
        &self,
        diags: &mut Diagnostics,
        _terraform_version: String,
        config: Self::Config<'a>,
    ) -> Option<()> {
        let settings = match config.settings() {
            Ok(settings) => settings,
            Err(reason) => {
                diags.root_error("invalid provider settings", reason);
                return None;
            }
        };
        if settings.genesis.is_none() {
            diags.root_warning(
                "no genesis: the RPC server is trusted",
                "without `genesis` the provider believes what the RPC server says about the \
                 catalog, prices and leases it pays for and closes; set `genesis` to prove it",
            );
        }
        match Connection::open(&settings).await {
            Ok(connection) => {
                self.shared.set(connection);
                Some(())
            }
            Err(error) => {
                diags.root_error("cannot reach the Logos chain", error.to_string());
                None
            }
        }
    }

    fn get_resources(
        &self,
        _diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicResource>>> {
        Some(map! {
            "lease" => LeaseResource::new(self.shared.clone()),
        })
    }

    fn get_data_sources(
        &self,
        _diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicDataSource>>> {
        Some(map! {
            "catalog" => CatalogSource::new(self.shared.clone()),
            "prices" => PricesSource::new(self.shared.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(rpc: Option<&str>, key: Option<&str>) -> ProviderConfig<'static> {
        let value = |text: Option<&str>| match text {
            Some(text) => ValueString::from(text.to_string()),
            None => ValueString::Null,
        };
        ProviderConfig {
            rpc: value(rpc),
            key: value(key),
            ..Default::default()
        }
    }

    #[test]
    fn settings_refuse_other_schemes_key_paths_and_oversize_values() {
        let settings = config(Some("http://127.0.0.1:8545"), Some("dev"))
            .settings()
            .unwrap();
        assert_eq!(settings.key.as_deref(), Some("dev"));
        assert_eq!(config(None, None).settings().unwrap(), Settings::default());
        for rpc in ["file:///etc/passwd", "127.0.0.1:8545", "ftp://x"] {
            let refused = config(Some(rpc), None).settings().unwrap_err();
            assert!(refused.contains("not an http"), "{rpc}: {refused}");
        }
        for key in ["../x", "a/b", ".hidden", "", "a\\b"] {
            let refused = config(None, Some(key)).settings().unwrap_err();
            assert!(refused.contains("not a key name"), "{key}: {refused}");
        }
        let long = format!("http://{}", "a".repeat(SETTING_MAX_BYTES));
        let refused = config(Some(&long), None).settings().unwrap_err();
        assert!(refused.contains("over"), "{refused}");
    }
}
