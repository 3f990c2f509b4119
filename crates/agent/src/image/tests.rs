//! The image store against a registry on loopback that serves honest images or lies about
//! them (attacker's side): every lie is refused with its own reason and nothing it served
//! enters the cache.

use super::*;
use axum::{
    extract::{Path as UrlPath, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
};
use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
};

/// What a fake registry serves: manifests and blobs by digest, with overrides (lies).
#[derive(Default)]
struct Registry {
    manifests: BTreeMap<String, (Vec<u8>, String)>,
    blobs: BTreeMap<String, Vec<u8>>,
    requests: AtomicUsize,
}

type Shared = Arc<Mutex<Registry>>;

/// `GET /v2/<repository>/(manifests|blobs)/<digest>` (repositories hold slashes).
async fn route(State(registry): State<Shared>, UrlPath(rest): UrlPath<String>) -> Response {
    let Some((_, tail)) = rest.rsplit_once("/manifests/") else {
        return match rest.rsplit_once("/blobs/") {
            Some((_, digest)) => blob(registry, digest.to_string()).await,
            None => StatusCode::NOT_FOUND.into_response(),
        };
    };
    manifest(registry, tail.to_string()).await
}

async fn manifest(registry: Shared, reference: String) -> Response {
    let registry = registry.lock().unwrap();
    registry.requests.fetch_add(1, Ordering::SeqCst);
    match registry.manifests.get(&reference) {
        Some((bytes, media_type)) => {
            ([(header::CONTENT_TYPE, media_type.clone())], bytes.clone()).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn blob(registry: Shared, digest: String) -> Response {
    let registry = registry.lock().unwrap();
    registry.requests.fetch_add(1, Ordering::SeqCst);
    match registry.blobs.get(&digest) {
        Some(bytes) => bytes.clone().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn serve(registry: Shared) -> String {
    let app = axum::Router::new()
        .route("/v2/", axum::routing::get(|| async { "{}" }))
        .route("/v2/{*rest}", axum::routing::get(route))
        .with_state(registry);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

fn descriptor(media_type: &str, bytes: &[u8]) -> serde_json::Value {
    serde_json::json!({"mediaType": media_type, "digest": digest(bytes), "size": bytes.len()})
}

const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// An image: its config, layers and manifest, as served.
struct Fixture {
    config: Vec<u8>,
    layers: Vec<Vec<u8>>,
    manifest: Vec<u8>,
}

impl Fixture {
    fn new(layers: Vec<Vec<u8>>, layer_type: &str) -> Self {
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Entrypoint": ["/bin/node"], "Cmd": ["--serve"], "Env": ["A=1"], "WorkingDir": "/srv"},
            "rootfs": {"type": "layers", "diff_ids": []}
        }))
        .unwrap();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": layout::MANIFEST_MEDIA_TYPE,
            "config": descriptor(CONFIG, &config),
            "layers": layers.iter().map(|layer| descriptor(layer_type, layer)).collect::<Vec<_>>(),
        }))
        .unwrap();
        Self {
            config,
            layers,
            manifest,
        }
    }

    fn honest() -> Self {
        Self::new(vec![b"layer one".to_vec(), b"layer two".to_vec()], LAYER)
    }

    fn publish(&self, registry: &Shared) {
        let mut registry = registry.lock().unwrap();
        registry.manifests.insert(
            digest(&self.manifest),
            (self.manifest.clone(), layout::MANIFEST_MEDIA_TYPE.into()),
        );
        registry
            .blobs
            .insert(digest(&self.config), self.config.clone());
        for layer in &self.layers {
            registry.blobs.insert(digest(layer), layer.clone());
        }
    }

    fn reference(&self, address: &str) -> String {
        format!("{address}/logos/test@{}", digest(&self.manifest))
    }
}

fn store(address: &str, name: &str) -> (ImageStore, PathBuf) {
    let root = std::env::temp_dir().join(format!("logos-images-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let store = ImageStore::new(&root, vec![address.to_string()], ImageLimits::default()).unwrap();
    (store, root)
}

async fn setup(name: &str) -> (Shared, String, ImageStore, PathBuf) {
    let registry: Shared = Arc::default();
    let address = serve(registry.clone()).await;
    let (store, root) = store(&address, name);
    store.prepare().await.unwrap();
    (registry, address, store, root)
}

#[tokio::test]
async fn a_pinned_image_is_pulled_verified_cached_and_its_config_read() {
    let (registry, address, store, root) = setup("honest").await;
    let image = Fixture::honest();
    image.publish(&registry);
    let (pulled, pin) = store.ensure(&image.reference(&address)).await.unwrap();
    assert_eq!(pulled.digest_hex, sha256_hex(&image.manifest));
    assert_eq!(pulled.config.entrypoint, ["/bin/node"]);
    assert_eq!(pulled.config.cmd, ["--serve"]);
    assert_eq!(pulled.config.env, ["A=1"]);
    assert_eq!(pulled.config.working_dir.as_deref(), Some("/srv"));
    for layer in &image.layers {
        assert!(store.layout().has(&sha256_hex(layer)));
    }
    // Cached: no request reaches the registry the second time.
    let before = registry.lock().unwrap().requests.load(Ordering::SeqCst);
    let (cached, second_pin) = store.ensure(&image.reference(&address)).await.unwrap();
    assert_eq!(cached.pull_ms, 0);
    assert_eq!(
        registry.lock().unwrap().requests.load(Ordering::SeqCst),
        before
    );
    // Evicted when the cache is over its bound and nothing keeps it: not while an
    // environment uses it, nor while a creation holds it pinned.
    drop((pin, second_pin));
    store
        .evict(std::slice::from_ref(&pulled.digest_hex), 0)
        .await
        .unwrap();
    assert!(
        store.layout().has(&sha256_hex(&image.layers[0])),
        "kept while in use"
    );
    let (_, pin) = store.ensure(&image.reference(&address)).await.unwrap();
    store.evict(&[], 0).await.unwrap();
    assert!(
        store.layout().has(&sha256_hex(&image.layers[0])),
        "kept while pinned"
    );
    drop(pin);
    store.evict(&[], 0).await.unwrap();
    assert!(!store.layout().has(&sha256_hex(&image.layers[0])));
    assert_eq!(
        store.layout().named(&pulled.digest_hex).await.unwrap(),
        None
    );
    let _ = std::fs::remove_dir_all(root);
}

/// Asserts `error` is of the expected kind and that nothing was named in the cache.
async fn refused(store: &ImageStore, reference: &str, check: impl Fn(&ImageError) -> bool) {
    let error = store.ensure(reference).await.unwrap_err();
    assert!(check(&error), "{reference}: unexpected {error}");
    assert!(
        store.layout().names().await.unwrap().is_empty(),
        "{error}: something was cached"
    );
}

#[tokio::test]
async fn lying_registries_are_refused_and_nothing_they_serve_is_cached() {
    let (registry, address, store, root) = setup("lies").await;

    // A manifest that is not the pinned one.
    let genuine = Fixture::honest();
    let swapped = Fixture::new(vec![b"malware".to_vec()], LAYER);
    genuine.publish(&registry);
    registry.lock().unwrap().manifests.insert(
        digest(&genuine.manifest),
        (swapped.manifest.clone(), layout::MANIFEST_MEDIA_TYPE.into()),
    );
    refused(&store, &genuine.reference(&address), |e| {
        matches!(e, ImageError::DigestMismatch { .. })
    })
    .await;

    // A manifest too large to read (its digest pinned, so only its size is wrong).
    let huge = vec![b' '; MANIFEST_MAX_BYTES as usize + 1];
    registry.lock().unwrap().manifests.insert(
        digest(&huge),
        (huge.clone(), layout::MANIFEST_MEDIA_TYPE.into()),
    );
    let reference = format!("{address}/logos/test@{}", digest(&huge));
    refused(&store, &reference, |e| {
        matches!(e, ImageError::TooLarge { .. })
    })
    .await;

    // A layer whose bytes are not its digest's.
    let image = Fixture::new(vec![b"good layer".to_vec()], LAYER);
    image.publish(&registry);
    registry
        .lock()
        .unwrap()
        .blobs
        .insert(digest(&image.layers[0]), b"evil layer".to_vec());
    refused(&store, &image.reference(&address), |e| {
        matches!(e, ImageError::DigestMismatch { .. })
    })
    .await;
    assert!(!store.layout().has(&sha256_hex(&image.layers[0])));

    // A layer served longer or shorter than its descriptor.
    let image = Fixture::new(vec![b"exact".to_vec()], LAYER);
    image.publish(&registry);
    registry
        .lock()
        .unwrap()
        .blobs
        .insert(digest(&image.layers[0]), b"exact and then some".to_vec());
    refused(&store, &image.reference(&address), |e| {
        matches!(e, ImageError::TooLarge { .. })
    })
    .await;
    let image = Fixture::new(vec![b"longer layer".to_vec()], LAYER);
    image.publish(&registry);
    registry
        .lock()
        .unwrap()
        .blobs
        .insert(digest(&image.layers[0]), b"longer".to_vec());
    refused(&store, &image.reference(&address), |e| {
        matches!(e, ImageError::Malformed(_))
    })
    .await;

    // Layer types umoci cannot unpack, too many layers, more bytes than allowed.
    let zstd = Fixture::new(
        vec![b"z".to_vec()],
        "application/vnd.oci.image.layer.v1.tar+zstd",
    );
    zstd.publish(&registry);
    refused(&store, &zstd.reference(&address), |e| {
        matches!(e, ImageError::Unsupported(_))
    })
    .await;
    let many = Fixture::new(
        (0..=LAYERS_MAX)
            .map(|i| format!("l{i}").into_bytes())
            .collect(),
        LAYER,
    );
    many.publish(&registry);
    refused(&store, &many.reference(&address), |e| {
        matches!(e, ImageError::TooLarge { .. })
    })
    .await;
    let big = Fixture::new(vec![vec![7u8; 4096]], LAYER);
    big.publish(&registry);
    let (small_store, small_root) = {
        let root = root.with_extension("small");
        let _ = std::fs::remove_dir_all(&root);
        let store = ImageStore::new(
            &root,
            vec![address.clone()],
            ImageLimits {
                image_max_bytes: 1024,
            },
        )
        .unwrap();
        store.prepare().await.unwrap();
        (store, root)
    };
    refused(&small_store, &big.reference(&address), |e| {
        matches!(e, ImageError::TooLarge { .. })
    })
    .await;

    // A Docker-format manifest (only OCI media types are run).
    let docker = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": descriptor(CONFIG, b"{}"), "layers": []
    }))
    .unwrap();
    registry.lock().unwrap().manifests.insert(
        digest(&docker),
        (
            docker.clone(),
            "application/vnd.docker.distribution.manifest.v2+json".into(),
        ),
    );
    refused(
        &store,
        &format!("{address}/logos/test@{}", digest(&docker)),
        |e| matches!(e, ImageError::Unsupported(_)),
    )
    .await;

    // Not pinned by digest: refused before any request.
    let before = registry.lock().unwrap().requests.load(Ordering::SeqCst);
    refused(&store, &format!("{address}/logos/test:latest"), |e| {
        matches!(e, ImageError::Reference(_))
    })
    .await;
    assert_eq!(
        registry.lock().unwrap().requests.load(Ordering::SeqCst),
        before
    );
    // What the failed pulls left (blobs no cached image names) is swept by eviction.
    let good = Fixture::new(vec![b"good layer".to_vec()], LAYER);
    store.evict(&[], u64::MAX).await.unwrap();
    assert!(
        store.layout().blobs().await.unwrap().is_empty(),
        "orphaned blobs left"
    );
    assert!(!store.layout().has(&sha256_hex(&good.config)));
    let _ = std::fs::remove_dir_all(root);
    let _ = std::fs::remove_dir_all(small_root);
}

#[tokio::test]
async fn an_index_resolves_to_this_platform_and_is_checked_the_same_way() {
    let (registry, address, store, root) = setup("index").await;
    let image = Fixture::honest();
    image.publish(&registry);
    let entry = |arch: &str, bytes: &[u8]| {
        let mut entry = descriptor(layout::MANIFEST_MEDIA_TYPE, bytes);
        entry["platform"] = serde_json::json!({"architecture": arch, "os": "linux"});
        entry
    };
    let arch = oci_spec::image::Arch::default().to_string();
    let other = Fixture::new(vec![b"other arch".to_vec()], LAYER);
    other.publish(&registry);
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry("s390x", &other.manifest), entry(&arch, &image.manifest)],
    }))
    .unwrap();
    registry.lock().unwrap().manifests.insert(
        digest(&index),
        (
            index.clone(),
            "application/vnd.oci.image.index.v1+json".into(),
        ),
    );
    let (pulled, _pin) = store
        .ensure(&format!("{address}/logos/test@{}", digest(&index)))
        .await
        .unwrap();
    assert_eq!(
        pulled.digest_hex,
        sha256_hex(&index),
        "named by the pinned digest"
    );
    assert_eq!(
        store.layout().named(&pulled.digest_hex).await.unwrap(),
        Some(sha256_hex(&image.manifest))
    );
    assert!(
        !store.layout().has(&sha256_hex(&other.layers[0])),
        "the other platform is not pulled"
    );

    // An index without this platform.
    let foreign = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry("s390x", &other.manifest)],
    }))
    .unwrap();
    registry.lock().unwrap().manifests.insert(
        digest(&foreign),
        (
            foreign.clone(),
            "application/vnd.oci.image.index.v1+json".into(),
        ),
    );
    let error = store
        .ensure(&format!("{address}/logos/test@{}", digest(&foreign)))
        .await
        .unwrap_err();
    assert!(matches!(error, ImageError::Unsupported(_)), "{error}");
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn digests_from_registries_are_checked_before_they_name_files() {
    assert!(digest_hex("sha256:../../etc/passwd").is_err());
    assert!(digest_hex(&format!("sha256:{}", "A".repeat(64))).is_err());
    assert!(digest_hex(&format!("sha512:{}", "a".repeat(64))).is_err());
    assert_eq!(
        digest_hex(&format!("sha256:{}", "a".repeat(64))).unwrap(),
        "a".repeat(64)
    );
    let oversized_config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
        "config": {"Env": vec!["A=1"; IMAGE_CONFIG_ENTRIES_MAX + 1]}
    });
    let error = parse_config(&serde_json::to_vec(&oversized_config).unwrap()).unwrap_err();
    assert!(matches!(error, ImageError::TooLarge { .. }), "{error}");
}
