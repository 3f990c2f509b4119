//! The agent's image cache as an OCI image layout (OCI image spec, "image layout"): `oci-layout`,
//! `index.json` naming each cached manifest by its digest's hex (the `ref.name` annotation
//! umoci unpacks by), and `blobs/sha256/<hex>`. A blob enters the cache only through
//! [`Layout::store`], which writes it beside its final name and renames it into place after its
//! digest and size were checked, so every blob in the cache is what its name says.

use super::ImageError;
use commonware_cryptography::{Hasher, Sha256};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `index.json`'s annotation naming a manifest (OCI image spec, annotations).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Media type of an image manifest (OCI image spec).
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// One entry of `index.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexEntry {
    /// Media type of the manifest.
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// `ref.name` = the digest's hex.
    pub annotations: std::collections::BTreeMap<String, String>,
}

impl IndexEntry {
    fn name(&self) -> Option<&str> {
        self.annotations.get(REF_NAME).map(String::as_str)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    manifests: Vec<IndexEntry>,
}

/// The cache directory (see the module docs).
#[derive(Clone, Debug)]
pub struct Layout {
    root: PathBuf,
}

/// `sha256:<hex>` → `<hex>`, refusing anything that is not 64 lowercase hex digits (a digest
/// from a registry becomes a file name).
pub fn digest_hex(digest: &str) -> Result<&str, ImageError> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|hex| {
            hex.len() == 64
                && hex
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        })
        .ok_or_else(|| ImageError::Unsupported(format!("digest {digest:?}")))?;
    Ok(hex)
}

/// SHA-256 of `bytes` as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let mut hasher = Sha256::default();
    hasher.update(bytes);
    hex::encode(hasher.finalize().1)
}

impl Layout {
    /// The layout at `root`.
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    /// The layout's directory (`umoci --image <root>:<hex>`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the directories and `oci-layout` (idempotent).
    pub async fn prepare(&self) -> Result<(), ImageError> {
        tokio::fs::create_dir_all(self.root.join("blobs/sha256")).await?;
        let marker = self.root.join("oci-layout");
        if !marker.exists() {
            tokio::fs::write(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#).await?;
        }
        Ok(())
    }

    /// Where the blob with this hex digest lives.
    pub fn blob(&self, hex: &str) -> PathBuf {
        self.root.join("blobs/sha256").join(hex)
    }

    /// True if the blob is cached.
    pub fn has(&self, hex: &str) -> bool {
        self.blob(hex).is_file()
    }

    /// Reads a cached blob of at most `max_bytes`.
    pub async fn read(&self, hex: &str, max_bytes: u64) -> Result<Vec<u8>, ImageError> {
        let path = self.blob(hex);
        let size = tokio::fs::metadata(&path).await?.len();
        if size > max_bytes {
            return Err(ImageError::TooLarge {
                what: format!("cached blob {hex}"),
                limit_bytes: max_bytes,
            });
        }
        Ok(tokio::fs::read(path).await?)
    }

    /// A temporary path beside the blob for a download in progress (unique per call: two
    /// images sharing a layer may pull it at once).
    pub fn partial(&self, hex: &str) -> PathBuf {
        static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.root
            .join("blobs/sha256")
            .join(format!(".partial-{hex}-{}-{call}", std::process::id()))
    }

    /// Stores `bytes` as the blob `hex` after checking their digest.
    pub async fn store(&self, hex: &str, bytes: &[u8]) -> Result<(), ImageError> {
        let actual = sha256_hex(bytes);
        if actual != hex {
            return Err(ImageError::DigestMismatch {
                expected: format!("sha256:{hex}"),
                actual: format!("sha256:{actual}"),
            });
        }
        let partial = self.partial(hex);
        tokio::fs::write(&partial, bytes).await?;
        tokio::fs::rename(&partial, self.blob(hex)).await?;
        Ok(())
    }

    /// Names manifest `manifest_hex` (of `size` bytes) `name` in `index.json` (replacing an
    /// earlier entry of that name), rewriting the file atomically. Callers serialize index
    /// writes.
    pub async fn name(&self, name: &str, manifest_hex: &str, size: u64) -> Result<(), ImageError> {
        let mut index = self.index().await?;
        index.manifests.retain(|entry| entry.name() != Some(name));
        index.manifests.push(IndexEntry {
            media_type: MANIFEST_MEDIA_TYPE.into(),
            digest: format!("sha256:{manifest_hex}"),
            size,
            annotations: [(REF_NAME.to_string(), name.to_string())].into(),
        });
        self.write_index(&index).await
    }

    /// Removes the entry named `name` from `index.json` (its blobs stay until
    /// [`Self::remove_blob`]).
    pub async fn forget(&self, name: &str) -> Result<(), ImageError> {
        let mut index = self.index().await?;
        index.manifests.retain(|entry| entry.name() != Some(name));
        self.write_index(&index).await
    }

    /// Every (name, manifest hex) of `index.json`.
    pub async fn names(&self) -> Result<Vec<(String, String)>, ImageError> {
        let mut names = Vec::new();
        for entry in self.index().await?.manifests {
            if let Some(name) = entry.name() {
                names.push((name.to_string(), digest_hex(&entry.digest)?.to_string()));
            }
        }
        Ok(names)
    }

    /// The manifest hex named `name`, if any.
    pub async fn named(&self, name: &str) -> Result<Option<String>, ImageError> {
        let names = self.names().await?;
        Ok(names
            .into_iter()
            .find(|(other, _)| other == name)
            .map(|(_, hex)| hex))
    }

    /// The hex digests of every complete blob in the cache.
    pub async fn blobs(&self) -> Result<Vec<String>, ImageError> {
        let mut found = Vec::new();
        let mut entries = tokio::fs::read_dir(self.root.join("blobs/sha256")).await?;
        while let Some(entry) = entries.next_entry().await? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if digest_hex(&format!("sha256:{name}")).is_ok() {
                found.push(name);
            }
        }
        Ok(found)
    }

    /// Removes the partial files an interrupted pull left (call when no pull runs).
    pub async fn remove_partials(&self) -> Result<(), ImageError> {
        let mut entries = tokio::fs::read_dir(self.root.join("blobs/sha256")).await?;
        while let Some(entry) = entries.next_entry().await? {
            if entry.file_name().to_string_lossy().starts_with(".partial-") {
                tokio::fs::remove_file(entry.path()).await?;
            }
        }
        Ok(())
    }

    /// Marks blob `hex` used now (its modification time orders eviction).
    pub fn touch(&self, hex: &str) {
        if let Ok(file) = std::fs::File::options().append(true).open(self.blob(hex)) {
            let _ = file.set_modified(std::time::SystemTime::now());
        }
    }

    /// Removes a blob (nothing if absent).
    pub async fn remove_blob(&self, hex: &str) -> Result<(), ImageError> {
        match tokio::fs::remove_file(self.blob(hex)).await {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error.into()),
            _ => Ok(()),
        }
    }

    async fn index(&self) -> Result<Index, ImageError> {
        match tokio::fs::read(self.root.join("index.json")).await {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|error| ImageError::Cache(format!("index.json: {error}"))),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Index {
                schema_version: 2,
                manifests: Vec::new(),
            }),
            Err(error) => Err(error.into()),
        }
    }

    async fn write_index(&self, index: &Index) -> Result<(), ImageError> {
        let bytes = serde_json::to_vec(index)
            .map_err(|error| ImageError::Cache(format!("index.json: {error}")))?;
        let partial = self
            .root
            .join(format!(".index-{}.json", std::process::id()));
        tokio::fs::write(&partial, bytes).await?;
        tokio::fs::rename(&partial, self.root.join("index.json")).await?;
        Ok(())
    }
}
