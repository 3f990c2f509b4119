//! Templates as files: the TOML form of a catalog template, checked the way the chain checks
//! it before a fee is spent.
//!
//! ```toml
//! name = "Logos full node"
//! product = "full-node"              # a product name, or its id
//! image = "logos-node"               # a name from images.toml, or registry/repository@sha256:…
//! command = ["logos", "node", "run", "--role", "full"]   # optional: the image's entrypoint
//! env = { RUST_LOG = "info" }        # optional
//! ports = [8545]
//! health = { port = 8545, path = "/health" }   # HTTP; { port = 8545 } probes TCP
//! volume_path = "/data"              # optional (default /data)
//! capabilities = ["NET_BIND_SERVICE"]          # optional: none unless listed
//! ```
//!
//! `images.toml` names images: `logos-node = "127.0.0.1:5000/logos/node@sha256:…"`, one per
//! line (what `logos devnet` writes beside its genesis).
//!
//! [`TemplateFile::template`] turns a file into the chain's [`Template`]: every field within
//! its on-chain bound, the image pinned by digest, the workload valid
//! ([`Workload::validate`]), and the publishing transaction within
//! [`TRANSACTION_MAX_BYTES`].

use logos_types::{
    catalog::{self, ProductId, Template},
    transaction_size,
    workload::{Capability, EnvVar, HealthCheck, Workload, WorkloadError},
    Call, TRANSACTION_MAX_BYTES,
};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Largest template or images file read, bytes.
pub const TEMPLATE_FILE_MAX_BYTES: usize = 16 * 1024;
/// Most images an images file names.
pub const IMAGES_MAX: usize = 64;

/// Why a template file is refused.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The file is larger than [`TEMPLATE_FILE_MAX_BYTES`].
    #[error("{0} is larger than {TEMPLATE_FILE_MAX_BYTES} bytes")]
    TooLarge(String),
    /// The file is not the TOML a template (or images file) is.
    #[error("{0}")]
    Syntax(String),
    /// A field is longer (or holds more entries) than the chain stores.
    #[error("{field} is over its bound of {bound}")]
    Bound {
        /// The field.
        field: String,
        /// Its bound (bytes or entries).
        bound: usize,
    },
    /// The image is a name no images file gives.
    #[error("image {0:?} is neither registry/repository@sha256:… nor a name in the images file (--images)")]
    UnknownImage(String),
    /// The workload breaks a rule the chain checks.
    #[error("{0}")]
    Workload(#[from] WorkloadError),
    /// The publishing transaction would be too large.
    #[error("the template takes a {size}-byte transaction, over the limit of {TRANSACTION_MAX_BYTES}: shorten the command or the environment")]
    TransactionTooLarge {
        /// Its size, bytes.
        size: usize,
    },
}

/// A template's product: its name in the catalog or its id.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ProductRef {
    /// By id.
    Id(u32),
    /// By name.
    Name(String),
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthFile {
    port: u16,
    path: Option<String>,
}

/// A template file (see the module docs).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateFile {
    /// Its name.
    pub name: String,
    /// Its product.
    pub product: ProductRef,
    image: String,
    #[serde(default)]
    command: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    ports: Vec<u16>,
    health: HealthFile,
    volume_path: Option<String>,
    #[serde(default)]
    capabilities: Vec<Capability>,
}

/// Image names and the pinned references they stand for (`images.toml`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Images(pub BTreeMap<String, String>);

fn bounded_text(text: &str, what: &str) -> Result<(), TemplateError> {
    if text.len() > TEMPLATE_FILE_MAX_BYTES {
        return Err(TemplateError::TooLarge(what.into()));
    }
    Ok(())
}

impl Images {
    /// Parses an images file.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        bounded_text(text, "the images file")?;
        let images: BTreeMap<String, String> = toml::from_str(text)
            .map_err(|error| TemplateError::Syntax(format!("images file: {error}")))?;
        if images.len() > IMAGES_MAX {
            return Err(TemplateError::Bound {
                field: "images".into(),
                bound: IMAGES_MAX,
            });
        }
        Ok(Self(images))
    }

    /// The file's text (`name = "reference"` per line, sorted).
    pub fn to_toml(&self) -> String {
        self.0
            .iter()
            .map(|(name, reference)| format!("{name} = {reference:?}\n"))
            .collect()
    }
}

fn bounded<const MAX: usize>(
    text: &str,
    field: &str,
) -> Result<logos_types::codec::BoundedString<MAX>, TemplateError> {
    text.try_into().map_err(|_| TemplateError::Bound {
        field: field.into(),
        bound: MAX,
    })
}

fn bounded_list<T, const MAX: usize>(
    items: Vec<T>,
    field: &str,
) -> Result<logos_types::codec::BoundedVec<T, MAX>, TemplateError> {
    items.try_into().map_err(|_| TemplateError::Bound {
        field: field.into(),
        bound: MAX,
    })
}

impl TemplateFile {
    /// Parses a template file.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        bounded_text(text, "the template file")?;
        toml::from_str(text).map_err(|error| TemplateError::Syntax(error.to_string()))
    }

    /// The image reference, with a name (letters, digits, `-`, `_`, `.`: no `/`, `:` or `@`)
    /// resolved through `images`; anything else is taken as a reference and checked as one.
    pub fn image(&self, images: &Images) -> Result<String, TemplateError> {
        let is_name = self
            .image
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !is_name {
            return Ok(self.image.clone());
        }
        images
            .0
            .get(&self.image)
            .cloned()
            .ok_or_else(|| TemplateError::UnknownImage(self.image.clone()))
    }

    /// The workload, checked like the chain checks it.
    pub fn workload(&self, images: &Images) -> Result<Workload, TemplateError> {
        let command = self
            .command
            .iter()
            .map(|part| bounded(part, "a command argument"))
            .collect::<Result<Vec<_>, _>>()?;
        let env = self
            .env
            .iter()
            .map(|(name, value)| {
                Ok(EnvVar {
                    name: bounded(name, "an environment variable name")?,
                    value: bounded(value, "an environment variable value")?,
                })
            })
            .collect::<Result<Vec<_>, TemplateError>>()?;
        let workload = Workload {
            image: bounded(&self.image(images)?, "image")?,
            command: bounded_list(command, "command")?,
            env: bounded_list(env, "env")?,
            ports: bounded_list(self.ports.clone(), "ports")?,
            health: HealthCheck {
                port: self.health.port,
                path: self
                    .health
                    .path
                    .as_deref()
                    .map(|path| bounded(path, "health.path"))
                    .transpose()?,
            },
            volume_path: self
                .volume_path
                .as_deref()
                .map(|path| bounded(path, "volume_path"))
                .transpose()?,
            capabilities: bounded_list(self.capabilities.clone(), "capabilities")?,
        };
        workload.validate()?;
        Ok(workload)
    }

    /// The chain's template for `product`, and the size of the transaction that publishes it.
    pub fn template(
        &self,
        product: ProductId,
        images: &Images,
    ) -> Result<(Template, usize), TemplateError> {
        let template = Template {
            name: bounded(&self.name, "name")?,
            product,
            workload: self.workload(images)?,
        };
        let call = Call::Catalog(catalog::Call::AddTemplate {
            template: template.clone(),
        });
        let size = transaction_size(&call);
        if size > TRANSACTION_MAX_BYTES {
            return Err(TemplateError::TransactionTooLarge { size });
        }
        Ok((template, size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn images() -> Images {
        Images::parse(&format!(
            "logos-node = \"127.0.0.1:5000/logos/node@{DIGEST}\"\n"
        ))
        .unwrap()
    }

    const NODE: &str = r#"
        name = "Logos full node"
        product = "full-node"
        image = "logos-node"
        command = ["logos", "node", "run", "--role", "full", "--rpc-listen", "0.0.0.0:8545"]
        env = { RUST_LOG = "info" }
        ports = [8545]
        health = { port = 8545, path = "/health" }
        volume_path = "/data"
    "#;

    #[test]
    fn a_template_file_becomes_the_chains_template() {
        let file = TemplateFile::parse(NODE).unwrap();
        assert_eq!(file.product, ProductRef::Name("full-node".into()));
        let (template, size) = file.template(ProductId(0), &images()).unwrap();
        assert_eq!(template.name, "Logos full node");
        assert_eq!(
            template.workload.image,
            format!("127.0.0.1:5000/logos/node@{DIGEST}").as_str()
        );
        assert_eq!(template.workload.health.path.as_deref(), Some("/health"));
        assert_eq!(template.workload.env[0].name, "RUST_LOG");
        assert!(size <= TRANSACTION_MAX_BYTES);
        let tcp = NODE.replace(
            r#"health = { port = 8545, path = "/health" }"#,
            "health = { port = 8545 }",
        );
        let (template, _) = TemplateFile::parse(&tcp)
            .unwrap()
            .template(ProductId(0), &images())
            .unwrap();
        assert_eq!(template.workload.health.path, None);
        let by_id = NODE.replace(r#"product = "full-node""#, "product = 3");
        assert_eq!(
            TemplateFile::parse(&by_id).unwrap().product,
            ProductRef::Id(3)
        );
        assert_eq!(Images::parse(&images().to_toml()).unwrap(), images());
    }

    #[test]
    fn broken_or_oversized_template_files_are_refused_with_what_to_change() {
        let refuse = |text: &str| {
            TemplateFile::parse(text)
                .and_then(|file| file.template(ProductId(0), &images()))
                .unwrap_err()
        };
        assert!(matches!(refuse("name = "), TemplateError::Syntax(_)));
        assert!(matches!(
            refuse(&format!("{NODE}\nunknown = 1")),
            TemplateError::Syntax(_)
        ));
        assert!(matches!(
            refuse(&" ".repeat(TEMPLATE_FILE_MAX_BYTES + 1)),
            TemplateError::TooLarge(_)
        ));
        assert!(matches!(
            refuse(&NODE.replace("\"logos-node\"", "\"busybox\"")),
            TemplateError::UnknownImage(_)
        ));
        assert!(matches!(
            refuse(&NODE.replace("\"logos-node\"", "\"busybox:latest\"")),
            TemplateError::Workload(WorkloadError::ImageReference(_))
        ));
        assert!(matches!(
            refuse(&NODE.replace("\"logos-node\"", "\"127.0.0.1:5000/x:latest@sha256:00\"")),
            TemplateError::Workload(WorkloadError::ImageReference(_))
        ));
        assert!(matches!(
            refuse(&NODE.replace("ports = [8545]", "ports = [8546]")),
            TemplateError::Workload(WorkloadError::HealthPortUndeclared(8545))
        ));
        assert!(matches!(
            refuse(&NODE.replace("ports = [8545]", "ports = [8545, 70000]")),
            TemplateError::Syntax(_)
        ));
        let many_ports: Vec<String> = (1..=17).map(|port| port.to_string()).collect();
        assert!(matches!(
            refuse(&NODE.replace(
                "ports = [8545]",
                &format!("ports = [8545, {}]", many_ports.join(", "))
            )),
            TemplateError::Bound { .. }
        ));
        assert!(matches!(
            refuse(&NODE.replace("\"--role\"", &format!("\"{}\"", "x".repeat(257)))),
            TemplateError::Bound { .. }
        ));
        assert!(matches!(
            refuse(&NODE.replace("RUST_LOG", "LOGOS_CHAIN_RPC")),
            TemplateError::Workload(WorkloadError::EnvReserved(_))
        ));
        assert!(matches!(
            refuse(&NODE.replace("volume_path = \"/data\"", "volume_path = \"/proc\"")),
            TemplateError::Workload(WorkloadError::VolumePath(_))
        ));
        assert!(matches!(
            refuse(&format!("{NODE}\ncapabilities = [\"SYS_ADMIN\"]")),
            TemplateError::Syntax(_)
        ));
        // Within every bound, yet too large for one transaction.
        let long: Vec<String> = (0..16)
            .map(|_| format!("\"{}\"", "a".repeat(200)))
            .collect();
        let huge = NODE.replace(
            r#"command = ["logos", "node", "run", "--role", "full", "--rpc-listen", "0.0.0.0:8545"]"#,
            &format!("command = [{}]", long.join(", ")),
        );
        assert!(matches!(
            refuse(&huge),
            TemplateError::TransactionTooLarge { .. }
        ));
    }
}
