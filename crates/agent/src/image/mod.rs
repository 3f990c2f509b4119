//! OCI images pinned by digest: pulled from a registry, verified, cached and unpacked.
//!
//! [`ImageStore::ensure`] makes an image named `registry/repository@sha256:<hex>`
//! ([`logos_types::workload`]) present in the cache ([`layout`], an OCI image layout):
//! 1. the manifest is fetched by its digest (`GET /v2/<repository>/manifests/<digest>`, OCI
//!    distribution spec), read to at most [`MANIFEST_MAX_BYTES`], and its SHA-256 must equal
//!    the pinned digest; its media type is the one its content states (the registry's
//!    `Content-Type` only when the content states none); an image index is resolved to this
//!    machine's platform (`linux` and the agent's architecture), whose manifest is fetched
//!    and checked against the index's digest the same way;
//! 2. the config (at most [`CONFIG_MAX_BYTES`]) and every layer are streamed through
//!    `oci-client` into the cache, each counted against its descriptor's size and
//!    [`ImageLimits::image_max_bytes`] in all, and hashed: a blob whose digest or size differs
//!    is refused and never enters the cache;
//! 3. only OCI media types are accepted (manifest, index, config, `tar` and `tar+gzip`
//!    layers), at most [`LAYERS_MAX`] layers;
//! 4. a pull takes its image's lock only (other images are pulled at once, at most
//!    [`PULLS_MAX`]) and at most [`PULL_DEADLINE_MS`] in all.
//!
//! [`ImageStore::evict`] keeps the cache within its bound: images no environment uses and
//! no creation holds ([`Pin`]) go, least recently used first, and blobs no cached image names
//! (left by a failed pull) before them.
//!
//! [`ImageStore::unpack`] runs Debian's `umoci raw unpack` on a cached image with the
//! environment's uid/gid mapping, so the root filesystem's files belong to the environment's
//! unprivileged host range. The caller unpacks onto the environment's fixed-size disk, so an
//! image that expands beyond it fails there (a decompression bomb fills only that disk; the
//! driver's rootfs cache keeps only bounded trees).
//!
//! Errors name what was refused and why ([`ImageError`]).

pub mod layout;

use commonware_cryptography::{Hasher, Sha256};
use futures::StreamExt;
use layout::{digest_hex, sha256_hex, Layout};
use logos_types::workload::parse_image_reference;
use oci_client::{secrets::RegistryAuth, RegistryOperation};
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::io::AsyncWriteExt;

/// Largest manifest or image index read, bytes.
pub const MANIFEST_MAX_BYTES: u64 = 64 * 1024;
/// Largest image configuration read, bytes.
pub const CONFIG_MAX_BYTES: u64 = 1024 * 1024;
/// Most layers an image may have.
pub const LAYERS_MAX: usize = 128;
/// Largest image (config and compressed layers together) unless configured otherwise, bytes.
pub const DEFAULT_IMAGE_MAX_BYTES: u64 = 4 * 1024 * 1024 * 1024;
/// Time a registry request may take before it fails, ms (a layer download counts per read).
pub const REGISTRY_TIMEOUT_MS: u64 = 30_000;
/// Longest a whole pull may take, ms (a registry sending a byte now and then fails here).
pub const PULL_DEADLINE_MS: u64 = 600_000;
/// Most images pulled (or waiting to be) at once.
pub const PULLS_MAX: usize = 64;
/// Most entrypoint, command or environment entries taken from an image's configuration.
pub const IMAGE_CONFIG_ENTRIES_MAX: usize = 256;

/// Accept header of a manifest request: the OCI manifest and index.
const MANIFEST_ACCEPT: &str =
    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

/// Why an image was refused or could not be made available.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The reference is not pinned by digest, or a digest is not SHA-256 hex.
    #[error("image reference: {0}")]
    Reference(String),
    /// The registry could not be reached or refused the request.
    #[error("registry: {0}")]
    Registry(String),
    /// Content did not hash to the digest that names it.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest asked for.
        expected: String,
        /// The digest of what was served.
        actual: String,
    },
    /// Content is larger than its descriptor says or than a limit allows.
    #[error("{what} exceeds its limit of {limit_bytes} bytes")]
    TooLarge {
        /// What was too large.
        what: String,
        /// The limit, bytes.
        limit_bytes: u64,
    },
    /// A media type, platform or layout this agent does not run.
    #[error("unsupported image: {0}")]
    Unsupported(String),
    /// Content is not what its media type says.
    #[error("malformed {0}")]
    Malformed(String),
    /// The cache could not be read or written.
    #[error("image cache: {0}")]
    Cache(String),
    /// umoci failed to unpack the image.
    #[error("unpack: {0}")]
    Unpack(String),
}

impl From<std::io::Error> for ImageError {
    fn from(error: std::io::Error) -> Self {
        Self::Cache(error.to_string())
    }
}

/// Bounds of a pull.
#[derive(Clone, Copy, Debug)]
pub struct ImageLimits {
    /// Largest image (config and compressed layers), bytes.
    pub image_max_bytes: u64,
}

impl Default for ImageLimits {
    fn default() -> Self {
        Self {
            image_max_bytes: DEFAULT_IMAGE_MAX_BYTES,
        }
    }
}

/// What an environment needs of an image's configuration (OCI image spec, `config`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageConfig {
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `Env` (`NAME=value`).
    pub env: Vec<String>,
    /// `WorkingDir`, if set.
    pub working_dir: Option<String>,
}

/// A cached image.
#[derive(Clone, Debug)]
pub struct Image {
    /// The pinned digest's hex (the name in the cache).
    pub digest_hex: String,
    /// Its configuration.
    pub config: ImageConfig,
    /// Time spent pulling it now, ms (0 when it was cached).
    pub pull_ms: u64,
}

/// The agent's images (see the module docs).
pub struct ImageStore {
    layout: Layout,
    http: reqwest::Client,
    oci: oci_client::Client,
    insecure: Vec<String>,
    limits: ImageLimits,
    /// One pull per image at a time (different images are pulled at once), at most
    /// [`PULLS_MAX`] images: digest hex → its lock.
    pulls: std::sync::Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Writes of `index.json` (and eviction), one at a time.
    index: tokio::sync::Mutex<()>,
    /// Images in use by a creation or update that has not recorded them yet: never evicted.
    pins: Arc<std::sync::Mutex<BTreeMap<String, usize>>>,
}

/// Keeps an image from eviction while it lives (see [`ImageStore::ensure`]).
#[derive(Debug)]
pub struct Pin {
    pins: Arc<std::sync::Mutex<BTreeMap<String, usize>>>,
    hex: String,
}

impl Drop for Pin {
    fn drop(&mut self) {
        let mut pins = self
            .pins
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = pins.get_mut(&self.hex) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                pins.remove(&self.hex);
            }
        }
    }
}

impl ImageStore {
    /// A store caching under `root`; registries in `insecure` (`host:port`) are reached over
    /// plain HTTP, all others over HTTPS.
    pub fn new(
        root: &Path,
        insecure: Vec<String>,
        limits: ImageLimits,
    ) -> Result<Self, ImageError> {
        let timeout = Duration::from_millis(REGISTRY_TIMEOUT_MS);
        let http = logos_client::http::untrusted(timeout)
            .map_err(|error| ImageError::Registry(error.to_string()))?;
        let oci = oci_client::Client::new(oci_client::client::ClientConfig {
            protocol: oci_client::client::ClientProtocol::HttpsExcept(insecure.clone()),
            read_timeout: Some(timeout),
            connect_timeout: Some(timeout),
            ..Default::default()
        });
        Ok(Self {
            layout: Layout::new(root),
            http,
            oci,
            insecure,
            limits,
            pulls: std::sync::Mutex::new(BTreeMap::new()),
            index: tokio::sync::Mutex::new(()),
            pins: Arc::default(),
        })
    }

    /// The cache's OCI layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Creates the cache directory and removes what an interrupted pull left (partial files).
    pub async fn prepare(&self) -> Result<(), ImageError> {
        self.layout.prepare().await?;
        self.layout.remove_partials().await
    }

    /// Makes `reference` present in the cache (pulling what is missing, within
    /// [`PULL_DEADLINE_MS`]) and returns it, pinned: it is not evicted while the [`Pin`] lives.
    pub async fn ensure(&self, reference: &str) -> Result<(Image, Pin), ImageError> {
        let pinned = parse_image_reference(reference)
            .map_err(|error| ImageError::Reference(error.to_string()))?;
        let target: oci_client::Reference = reference
            .parse()
            .map_err(|error: oci_client::ParseError| ImageError::Reference(error.to_string()))?;
        let hex = pinned.digest_hex.to_string();
        let pin = self.pin(&hex);
        let deadline = Duration::from_millis(PULL_DEADLINE_MS);
        let image = tokio::time::timeout(deadline, self.ensure_pinned(&target, &hex))
            .await
            .map_err(|_| {
                ImageError::Registry(format!(
                    "pull of {reference} took over {PULL_DEADLINE_MS} ms"
                ))
            })??;
        Ok((image, pin))
    }

    fn pin(&self, hex: &str) -> Pin {
        let mut pins = self
            .pins
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *pins.entry(hex.to_string()).or_insert(0) += 1;
        Pin {
            pins: self.pins.clone(),
            hex: hex.to_string(),
        }
    }

    /// The lock of image `hex`'s pulls; refused when [`PULLS_MAX`] images are in flight.
    fn pull_lock(&self, hex: &str) -> Result<Arc<tokio::sync::Mutex<()>>, ImageError> {
        let mut pulls = self
            .pulls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Locks nobody holds or waits on are dropped.
        pulls.retain(|_, lock| Arc::strong_count(lock) > 1);
        if !pulls.contains_key(hex) && pulls.len() >= PULLS_MAX {
            return Err(ImageError::Registry(format!(
                "{PULLS_MAX} images are being pulled already"
            )));
        }
        Ok(pulls.entry(hex.to_string()).or_default().clone())
    }

    async fn ensure_pinned(
        &self,
        target: &oci_client::Reference,
        hex: &str,
    ) -> Result<Image, ImageError> {
        let lock = self.pull_lock(hex)?;
        let _pull = lock.lock().await;
        let started = Instant::now();
        let cached = self.cached(hex).await?;
        let (manifest, pulled) = match cached {
            Some(manifest) => (manifest, false),
            None => (self.pull(target, hex).await?, true),
        };
        let hex = hex.to_string();
        let config = self.config(&manifest).await?;
        let pull_ms = if pulled {
            u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
        } else {
            0
        };
        Ok(Image {
            digest_hex: hex,
            config,
            pull_ms,
        })
    }

    /// The manifest cached under `hex` if it and every blob it names are in the cache (used
    /// now: eviction goes by last use).
    async fn cached(&self, hex: &str) -> Result<Option<ImageManifest>, ImageError> {
        let Some(manifest_hex) = self.layout.named(hex).await? else {
            return Ok(None);
        };
        self.layout.touch(&manifest_hex);
        let manifest = parse_manifest(&self.layout.read(&manifest_hex, MANIFEST_MAX_BYTES).await?)?;
        let complete = blobs_of(&manifest)?
            .iter()
            .all(|blob| self.layout.has(blob));
        Ok(complete.then_some(manifest))
    }

    /// Pulls the image pinned by `hex` into the cache; returns its (platform) manifest.
    async fn pull(
        &self,
        target: &oci_client::Reference,
        hex: &str,
    ) -> Result<ImageManifest, ImageError> {
        let (bytes, media_type) = self.fetch_manifest(target, hex).await?;
        let (manifest_hex, bytes) = match media_type {
            MediaType::ImageIndex => {
                let platform = platform_manifest(&bytes)?;
                let platform_hex = digest_hex(platform.digest().as_ref())?.to_string();
                let (platform_bytes, platform_type) =
                    self.fetch_manifest(target, &platform_hex).await?;
                if platform_type != MediaType::ImageManifest {
                    return Err(ImageError::Unsupported(format!(
                        "an index entry of media type {platform_type}"
                    )));
                }
                (platform_hex, platform_bytes)
            }
            _ => (hex.to_string(), bytes),
        };
        let manifest = parse_manifest(&bytes)?;
        check_manifest(&manifest, self.limits.image_max_bytes)?;
        let config = manifest.config();
        self.pull_blob(target, config, CONFIG_MAX_BYTES).await?;
        for layer in manifest.layers() {
            self.pull_blob(target, layer, self.limits.image_max_bytes)
                .await?;
        }
        self.layout.store(&manifest_hex, &bytes).await?;
        let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        // A pinned index is named by its digest but points at the platform manifest.
        let _index = self.index.lock().await;
        self.layout.name(hex, &manifest_hex, size).await?;
        Ok(manifest)
    }

    /// `GET /v2/<repository>/manifests/sha256:<hex>`, bounded and checked against `hex`;
    /// asks `oci-client` for an anonymous token if the registry wants one.
    async fn fetch_manifest(
        &self,
        target: &oci_client::Reference,
        hex: &str,
    ) -> Result<(Vec<u8>, MediaType), ImageError> {
        let registry = target.resolve_registry();
        let scheme = if self.insecure.iter().any(|name| name == registry) {
            "http"
        } else {
            "https"
        };
        let url = format!(
            "{scheme}://{registry}/v2/{}/manifests/sha256:{hex}",
            target.repository()
        );
        let mut response = self.get_manifest(&url, None).await?;
        if response.status() == reqwest::StatusCode::UNAUTHORIZED {
            let token = self
                .oci
                .auth(target, &RegistryAuth::Anonymous, RegistryOperation::Pull)
                .await
                .map_err(|error| ImageError::Registry(format!("{registry}: {error}")))?;
            response = self.get_manifest(&url, token.as_deref()).await?;
        }
        if !response.status().is_success() {
            return Err(ImageError::Registry(format!(
                "{url} answered {}",
                response.status()
            )));
        }
        let declared = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(|value| value.split(';').next().unwrap_or("").trim().to_string());
        let bytes = logos_client::http::read_bounded(response, MANIFEST_MAX_BYTES as usize)
            .await
            .map_err(|_| ImageError::TooLarge {
                what: format!("manifest sha256:{hex}"),
                limit_bytes: MANIFEST_MAX_BYTES,
            })?
            .to_vec();
        let actual = sha256_hex(&bytes);
        if actual != hex {
            return Err(ImageError::DigestMismatch {
                expected: format!("sha256:{hex}"),
                actual: format!("sha256:{actual}"),
            });
        }
        Ok((
            bytes.clone(),
            manifest_media_type(&bytes, declared.as_deref())?,
        ))
    }

    async fn get_manifest(
        &self,
        url: &str,
        token: Option<&str>,
    ) -> Result<reqwest::Response, ImageError> {
        let mut request = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, MANIFEST_ACCEPT);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request
            .send()
            .await
            .map_err(|error| ImageError::Registry(format!("{url}: {error}")))
    }

    /// Streams the blob of `descriptor` into the cache unless it is there: at most
    /// `limit_bytes` and exactly the descriptor's size, hashing to its digest.
    async fn pull_blob(
        &self,
        target: &oci_client::Reference,
        descriptor: &Descriptor,
        limit_bytes: u64,
    ) -> Result<(), ImageError> {
        let digest = descriptor.digest().to_string();
        let hex = digest_hex(&digest)?.to_string();
        if self.layout.has(&hex) {
            return Ok(());
        }
        let size = descriptor.size();
        if size > limit_bytes {
            return Err(ImageError::TooLarge {
                what: format!("blob {digest} ({size} bytes)"),
                limit_bytes,
            });
        }
        let mut stream = self
            .oci
            .pull_blob_stream(target, digest.as_str())
            .await
            .map_err(|error| ImageError::Registry(format!("blob {digest}: {error}")))?;
        let partial = self.layout.partial(&hex);
        let result = self
            .write_blob(&mut stream.stream, &partial, &digest, size)
            .await;
        match result {
            Ok(()) => Ok(tokio::fs::rename(&partial, self.layout.blob(&hex)).await?),
            Err(error) => {
                let _ = tokio::fs::remove_file(&partial).await;
                Err(error)
            }
        }
    }

    async fn write_blob(
        &self,
        stream: &mut futures::stream::BoxStream<'static, Result<bytes::Bytes, std::io::Error>>,
        partial: &Path,
        digest: &str,
        size: u64,
    ) -> Result<(), ImageError> {
        let mut file = tokio::fs::File::create(partial).await?;
        let mut hasher = Sha256::default();
        let mut written: u64 = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                // oci-client checks the digest too and fails the stream's end: what was
                // served (its length, our own hash of it) says whether that was the reason.
                Err(error) => {
                    return Err(match (written == size, hex::encode(hasher.finalize().1)) {
                        (false, _) => short(digest, written, size),
                        (true, actual) if format!("sha256:{actual}") != digest => {
                            ImageError::DigestMismatch {
                                expected: digest.to_string(),
                                actual: format!("sha256:{actual}"),
                            }
                        }
                        _ => ImageError::Registry(format!("blob {digest}: {error}")),
                    })
                }
            };
            written = written.saturating_add(chunk.len() as u64);
            if written > size {
                return Err(ImageError::TooLarge {
                    what: format!("blob {digest} (served beyond its descriptor)"),
                    limit_bytes: size,
                });
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        if written != size {
            return Err(short(digest, written, size));
        }
        let actual = format!("sha256:{}", hex::encode(hasher.finalize().1));
        if actual != digest {
            return Err(ImageError::DigestMismatch {
                expected: digest.to_string(),
                actual,
            });
        }
        Ok(())
    }

    /// The configuration of a cached manifest.
    async fn config(&self, manifest: &ImageManifest) -> Result<ImageConfig, ImageError> {
        let hex = digest_hex(manifest.config().digest().as_ref())?.to_string();
        let bytes = self.layout.read(&hex, CONFIG_MAX_BYTES).await?;
        parse_config(&bytes)
    }

    /// Unpacks cached image `image` into `rootfs` (which must not exist) with every uid and
    /// gid shifted by `id_base` (`count` ids), through `umoci raw unpack`.
    pub async fn unpack(
        &self,
        image: &Image,
        rootfs: &Path,
        id_base: u32,
        count: u32,
    ) -> Result<(), ImageError> {
        let map = format!("0:{id_base}:{count}");
        let image_arg = format!("{}:{}", self.layout.root().display(), image.digest_hex);
        let output = tokio::process::Command::new("umoci")
            .args([
                "raw",
                "unpack",
                "--uid-map",
                &map,
                "--gid-map",
                &map,
                "--image",
            ])
            .arg(&image_arg)
            .arg(rootfs)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|error| ImageError::Unpack(format!("umoci: {error}")))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last = stderr.lines().last().unwrap_or("").trim().to_string();
            return Err(ImageError::Unpack(last));
        }
        Ok(())
    }

    /// Removes cached images not named in `keep` (hex digests) nor pinned, least recently
    /// used first, until the cache's blobs take at most `max_bytes`; blobs another kept image
    /// uses stay, and blobs no cached image names (left by a failed pull) go first.
    pub async fn evict(&self, keep: &[String], max_bytes: u64) -> Result<(), ImageError> {
        let _index = self.index.lock().await;
        let pinned: Vec<String> = self
            .pins
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .keys()
            .cloned()
            .collect();
        let mut candidates = Vec::new();
        for (name, manifest_hex) in self.layout.names().await? {
            let used = tokio::fs::metadata(self.layout.blob(&manifest_hex))
                .await
                .and_then(|meta| meta.modified())
                .ok();
            candidates.push((used, name, manifest_hex));
        }
        candidates.sort();
        self.remove_unnamed_blobs(&candidates, &pinned).await?;
        while self.size_bytes().await? > max_bytes {
            let removable = |name: &String| !keep.contains(name) && !pinned.contains(name);
            let Some(position) = candidates.iter().position(|(_, name, _)| removable(name)) else {
                return Ok(());
            };
            let (_, name, _) = candidates.remove(position);
            self.layout.forget(&name).await?;
            self.remove_unnamed_blobs(&candidates, &pinned).await?;
        }
        Ok(())
    }

    /// Removes every blob that no named image (`candidates`) uses, unless a pull is in flight
    /// (`pinned` not empty: its blobs are not named yet).
    async fn remove_unnamed_blobs(
        &self,
        candidates: &[(Option<std::time::SystemTime>, String, String)],
        pinned: &[String],
    ) -> Result<(), ImageError> {
        let pulling = pinned
            .iter()
            .any(|hex| !candidates.iter().any(|(_, name, _)| name == hex));
        if pulling {
            return Ok(());
        }
        let mut used = Vec::new();
        for (_, _, manifest_hex) in candidates {
            let bytes = self.layout.read(manifest_hex, MANIFEST_MAX_BYTES).await?;
            used.extend(blobs_of(&parse_manifest(&bytes)?)?);
            used.push(manifest_hex.clone());
        }
        for blob in self.layout.blobs().await? {
            if !used.contains(&blob) {
                self.layout.remove_blob(&blob).await?;
            }
        }
        Ok(())
    }

    /// Bytes held by cached blobs.
    pub async fn size_bytes(&self) -> Result<u64, ImageError> {
        let mut total: u64 = 0;
        let mut entries = tokio::fs::read_dir(self.layout.root().join("blobs/sha256")).await?;
        while let Some(entry) = entries.next_entry().await? {
            total = total.saturating_add(entry.metadata().await?.len());
        }
        Ok(total)
    }

    /// The names of the cached images (pinned digest hexes).
    pub async fn names(&self) -> Result<Vec<String>, ImageError> {
        let names = self.layout.names().await?;
        Ok(names.into_iter().map(|(name, _)| name).collect())
    }

    /// The cache's directory.
    pub fn root(&self) -> PathBuf {
        self.layout.root().to_path_buf()
    }
}

/// A blob that ended before its descriptor's size.
fn short(digest: &str, written: u64, size: u64) -> ImageError {
    ImageError::Malformed(format!(
        "blob {digest}: {written} bytes served, {size} described"
    ))
}

/// The manifest's media type: the content's own `mediaType`, or the `Content-Type` the
/// registry declared when the content states none.
fn manifest_media_type(bytes: &[u8], declared: Option<&str>) -> Result<MediaType, ImageError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Versioned {
        schema_version: u32,
        media_type: Option<String>,
    }
    let versioned: Versioned = serde_json::from_slice(bytes)
        .map_err(|error| ImageError::Malformed(format!("manifest: {error}")))?;
    if versioned.schema_version != 2 {
        return Err(ImageError::Unsupported(format!(
            "manifest schema version {}",
            versioned.schema_version
        )));
    }
    let media_type = versioned
        .media_type
        .or_else(|| declared.map(String::from))
        .unwrap_or_default();
    match MediaType::from(media_type.as_str()) {
        kind @ (MediaType::ImageManifest | MediaType::ImageIndex) => Ok(kind),
        other => Err(ImageError::Unsupported(format!(
            "manifest media type {other} (only OCI manifests and indexes; push with `skopeo copy --format oci`)"
        ))),
    }
}

fn parse_manifest(bytes: &[u8]) -> Result<ImageManifest, ImageError> {
    ImageManifest::from_reader(bytes)
        .map_err(|error| ImageError::Malformed(format!("manifest: {error}")))
}

/// The index entry for `linux` on this machine's architecture.
fn platform_manifest(bytes: &[u8]) -> Result<Descriptor, ImageError> {
    let index = ImageIndex::from_reader(bytes)
        .map_err(|error| ImageError::Malformed(format!("image index: {error}")))?;
    let arch = oci_spec::image::Arch::default();
    let linux = oci_spec::image::Os::Linux;
    index
        .manifests()
        .iter()
        .find(|entry| {
            entry
                .platform()
                .as_ref()
                .is_some_and(|platform| *platform.os() == linux && *platform.architecture() == arch)
        })
        .cloned()
        .ok_or_else(|| {
            ImageError::Unsupported(format!("no manifest for linux/{arch} in the index"))
        })
}

/// Refuses a manifest with too many layers, layer types umoci cannot unpack, or more bytes
/// than `image_max_bytes` in all.
fn check_manifest(manifest: &ImageManifest, image_max_bytes: u64) -> Result<(), ImageError> {
    let layers = manifest.layers();
    if layers.len() > LAYERS_MAX {
        return Err(ImageError::TooLarge {
            what: format!("{} layers", layers.len()),
            limit_bytes: LAYERS_MAX as u64,
        });
    }
    if *manifest.config().media_type() != MediaType::ImageConfig {
        return Err(ImageError::Unsupported(format!(
            "config media type {}",
            manifest.config().media_type()
        )));
    }
    let mut total = manifest.config().size();
    for layer in layers {
        if !matches!(
            layer.media_type(),
            MediaType::ImageLayer | MediaType::ImageLayerGzip
        ) {
            return Err(ImageError::Unsupported(format!(
                "layer media type {}",
                layer.media_type()
            )));
        }
        total = total.saturating_add(layer.size());
    }
    if total > image_max_bytes {
        return Err(ImageError::TooLarge {
            what: format!("image of {total} bytes"),
            limit_bytes: image_max_bytes,
        });
    }
    Ok(())
}

/// The hex digests of a manifest's config and layers.
fn blobs_of(manifest: &ImageManifest) -> Result<Vec<String>, ImageError> {
    std::iter::once(manifest.config())
        .chain(manifest.layers())
        .map(|descriptor| digest_hex(descriptor.digest().as_ref()).map(String::from))
        .collect()
}

/// The parts of an image configuration an environment uses, each list bounded.
fn parse_config(bytes: &[u8]) -> Result<ImageConfig, ImageError> {
    let configuration = ImageConfiguration::from_reader(bytes)
        .map_err(|error| ImageError::Malformed(format!("image config: {error}")))?;
    let Some(config) = configuration.config() else {
        return Ok(ImageConfig::default());
    };
    let bounded = |list: &Option<Vec<String>>, what: &str| -> Result<Vec<String>, ImageError> {
        let list = list.clone().unwrap_or_default();
        if list.len() > IMAGE_CONFIG_ENTRIES_MAX {
            return Err(ImageError::TooLarge {
                what: format!("image config {what} ({} entries)", list.len()),
                limit_bytes: IMAGE_CONFIG_ENTRIES_MAX as u64,
            });
        }
        Ok(list)
    };
    Ok(ImageConfig {
        entrypoint: bounded(config.entrypoint(), "Entrypoint")?,
        cmd: bounded(config.cmd(), "Cmd")?,
        env: bounded(config.env(), "Env")?,
        working_dir: config.working_dir().clone().filter(|dir| !dir.is_empty()),
    })
}

#[cfg(test)]
mod tests;
