//! What runs in an environment: an OCI image pinned by digest, its command, environment,
//! declared ports, health check, volume and the capabilities it may keep, and the rules every
//! workload must follow ([`Workload::validate`]), checked by the chain when a template is set,
//! by `logos template validate` and again by the agent before it runs anything.
//!
//! An image reference names its registry and repository and pins the content by its manifest
//! digest: `registry[:port]/repository@sha256:<64 lowercase hex>` (OCI distribution spec,
//! "pulling manifests"; a tag is refused: only the digest says what runs). The digest is what a
//! provider's agent verifies every blob against, so a registry cannot change what a template
//! runs.

use crate::{
    codec::{BoundedString, BoundedVec},
    record,
};

/// Longest image reference, bytes.
pub const IMAGE_REFERENCE_MAX_BYTES: usize = 256;
/// Longest command argument or environment value, bytes.
pub const ARGUMENT_MAX_BYTES: usize = 256;
/// Most command arguments of a workload.
pub const ARGUMENTS_MAX: usize = 16;
/// Most ports a workload declares.
pub const PORTS_MAX: usize = 16;
/// Most environment variables a workload sets.
pub const ENV_MAX: usize = 16;
/// Longest environment variable name, bytes.
pub const ENV_NAME_MAX_BYTES: usize = 64;
/// Longest HTTP health check path, bytes.
pub const HEALTH_PATH_MAX_BYTES: usize = 128;
/// Longest volume mount path, bytes.
pub const VOLUME_PATH_MAX_BYTES: usize = 128;
/// Most capabilities a workload keeps.
pub const CAPABILITIES_MAX: usize = 4;
/// Where the volume is mounted when the workload names no path.
pub const DEFAULT_VOLUME_PATH: &str = "/data";
/// Prefix of the environment variables the agent sets itself (a workload may not set them).
pub const RESERVED_ENV_PREFIX: &str = "LOGOS_";
/// The only digest algorithm image references may use.
pub const DIGEST_ALGORITHM: &str = "sha256";
/// Length of a SHA-256 digest in hex, characters.
const DIGEST_HEX_LENGTH: usize = 64;
/// Paths a volume may not be mounted over (the runtime's own mounts).
const RESERVED_PATHS: [&str; 5] = ["/proc", "/sys", "/dev", "/tmp", "/opt/logos"];

/// Start of the placeholder `${PUBLISHED:<port>}` in a command argument: the agent replaces
/// it with `ip:port`, the address at which the declared `<port>` is published (as the
/// environment's endpoint is for the health port). A leased validator declares it on chain as
/// its p2p address.
pub const PUBLISHED_PLACEHOLDER_PREFIX: &str = "${PUBLISHED:";

/// The placeholder for where declared `port` is published, `${PUBLISHED:<port>}`.
pub fn published_placeholder(port: u16) -> String {
    format!("{PUBLISHED_PLACEHOLDER_PREFIX}{port}}}")
}

/// The ports `${PUBLISHED:<port>}` placeholders of `argument` name, in order; `Err` with (at
/// most 16 characters of) what follows the prefix when one is not [`published_placeholder`] of a
/// port (a decimal number without leading zeros, closed by `}`), the only form the agent
/// replaces.
pub fn published_placeholders(argument: &str) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    let mut rest = argument;
    while let Some((_, after)) = rest.split_once(PUBLISHED_PLACEHOLDER_PREFIX) {
        let port = after
            .split_once('}')
            .and_then(|(digits, _)| {
                digits
                    .parse::<u16>()
                    .ok()
                    .filter(|p| p.to_string() == digits)
            })
            .ok_or_else(|| after.chars().take(16).collect::<String>())?;
        ports.push(port);
        rest = after;
    }
    Ok(ports)
}

/// An image reference (see the module docs).
pub type ImageReference = BoundedString<IMAGE_REFERENCE_MAX_BYTES>;
/// A command argument or an environment value.
pub type Argument = BoundedString<ARGUMENT_MAX_BYTES>;
/// An environment variable's name.
pub type EnvName = BoundedString<ENV_NAME_MAX_BYTES>;
/// An HTTP health check path.
pub type HealthPath = BoundedString<HEALTH_PATH_MAX_BYTES>;
/// A path inside the environment.
pub type VolumePath = BoundedString<VOLUME_PATH_MAX_BYTES>;

/// One environment variable.
#[record]
pub struct EnvVar {
    /// Its name: `[A-Za-z_][A-Za-z0-9_]*`, not starting with [`RESERVED_ENV_PREFIX`].
    pub name: EnvName,
    /// Its value.
    pub value: Argument,
}

/// How a provisioner tells that a workload is healthy.
#[record]
#[derive(Default)]
pub struct HealthCheck {
    /// The declared port probed.
    pub port: u16,
    /// With a path: `GET http://endpoint{path}` must answer 2xx. Without: a TCP connection
    /// must be accepted.
    pub path: Option<HealthPath>,
}

/// A Linux capability a workload may keep (every other one is dropped). Wire: one byte.
#[record]
#[derive(Copy, PartialOrd, Ord)]
pub enum Capability {
    /// Bind ports below 1024 (`CAP_NET_BIND_SERVICE`).
    #[index(0)]
    #[serde(rename = "NET_BIND_SERVICE")]
    NetBindService,
}

impl Capability {
    /// The name the kernel and OCI runtime specs use (`CAP_…`).
    pub fn kernel_name(self) -> &'static str {
        match self {
            Self::NetBindService => "CAP_NET_BIND_SERVICE",
        }
    }
}

/// What runs in an environment (see the module docs).
#[record]
#[derive(Default)]
pub struct Workload {
    /// The OCI image, pinned by digest.
    pub image: ImageReference,
    /// Command and arguments; empty runs the image's own entrypoint and command.
    pub command: BoundedVec<Argument, ARGUMENTS_MAX>,
    /// Environment variables, on top of the image's.
    pub env: BoundedVec<EnvVar, ENV_MAX>,
    /// TCP ports published on the provider's address (everything else stays closed).
    pub ports: BoundedVec<u16, PORTS_MAX>,
    /// The health check (its port is one of `ports`).
    pub health: HealthCheck,
    /// Where the environment's persistent volume is mounted (default [`DEFAULT_VOLUME_PATH`]).
    pub volume_path: Option<VolumePath>,
    /// Capabilities kept; none unless listed.
    pub capabilities: BoundedVec<Capability, CAPABILITIES_MAX>,
}

/// Why a workload is refused. Each says what to change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WorkloadError {
    /// The image reference does not follow `registry/repository@sha256:<hex>`.
    #[error("image reference {0:?} is not registry/repository@sha256:<64 lowercase hex>")]
    ImageReference(String),
    /// A declared port is 0.
    #[error("port 0 cannot be declared")]
    PortZero,
    /// A port is declared twice.
    #[error("port {0} is declared twice")]
    PortDuplicate(u16),
    /// The health check probes a port the workload does not declare.
    #[error("health port {0} is not one of the declared ports")]
    HealthPortUndeclared(u16),
    /// The health path is not an absolute path of visible ASCII.
    #[error("health path {0:?} must start with / and hold visible ASCII only")]
    HealthPath(String),
    /// An environment variable's name is not `[A-Za-z_][A-Za-z0-9_]*`.
    #[error("environment variable name {0:?} is not [A-Za-z_][A-Za-z0-9_]*")]
    EnvName(String),
    /// An environment variable name the agent sets itself.
    #[error("environment variable {0:?} is reserved (prefix LOGOS_)")]
    EnvReserved(String),
    /// An environment variable is set twice.
    #[error("environment variable {0:?} is set twice")]
    EnvDuplicate(String),
    /// An argument or value holds a NUL byte (it would be cut short).
    #[error("a command argument or environment value holds a NUL byte")]
    NulByte,
    /// The volume path is not a plain absolute path, or covers a reserved one.
    #[error("volume path {0:?} must be absolute, normalized, not / and not under /proc, /sys, /dev, /tmp or /opt/logos")]
    VolumePath(String),
    /// A capability is listed twice.
    #[error("capability {0:?} is listed twice")]
    CapabilityDuplicate(Capability),
    /// A `${PUBLISHED:<port>}` placeholder is not closed by `}` after a port number.
    #[error("placeholder ${{PUBLISHED:{0}: expected ${{PUBLISHED:<port>}} with a declared port")]
    PublishedPlaceholder(String),
    /// A `${PUBLISHED:<port>}` placeholder names a port the workload does not declare.
    #[error("${{PUBLISHED:{0}}} names port {0}, which is not one of the declared ports")]
    PublishedPortUndeclared(u16),
}

/// A parsed, valid image reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinnedImage<'a> {
    /// `host[:port]` of the registry.
    pub registry: &'a str,
    /// The repository path, e.g. `logos/node`.
    pub repository: &'a str,
    /// The manifest's SHA-256 digest, lowercase hex (64 characters).
    pub digest_hex: &'a str,
}

impl PinnedImage<'_> {
    /// `sha256:<hex>`.
    pub fn digest(&self) -> String {
        format!("{DIGEST_ALGORITHM}:{}", self.digest_hex)
    }
}

/// Parses `reference` (see the module docs).
pub fn parse_image_reference(reference: &str) -> Result<PinnedImage<'_>, WorkloadError> {
    let refused = || WorkloadError::ImageReference(reference.to_string());
    let (name, digest) = reference.split_once('@').ok_or_else(refused)?;
    let digest_hex = digest
        .strip_prefix(DIGEST_ALGORITHM)
        .and_then(|rest| rest.strip_prefix(':'))
        .ok_or_else(refused)?;
    let lowercase_hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
    if digest_hex.len() != DIGEST_HEX_LENGTH || !digest_hex.chars().all(lowercase_hex) {
        return Err(refused());
    }
    let (registry, repository) = name.split_once('/').ok_or_else(refused)?;
    if !valid_registry(registry) || repository.is_empty() {
        return Err(refused());
    }
    if !repository.split('/').all(valid_path_component) {
        return Err(refused());
    }
    Ok(PinnedImage {
        registry,
        repository,
        digest_hex,
    })
}

/// `host[:port]`: DNS labels or an IPv4 address (lowercase letters, digits, `-`, `.`), and
/// an optional decimal port.
fn valid_registry(registry: &str) -> bool {
    let (host, port) = match registry.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (registry, None),
    };
    let port_ok = port.is_none_or(|port| port.parse::<u16>().is_ok_and(|port| port > 0));
    let label_ok = |label: &str| {
        !label.is_empty()
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    port_ok && !host.is_empty() && host.split('.').all(label_ok)
}

/// One repository path component: lowercase alphanumerics joined by single `.`, `_` or `-`
/// (`__` too), as the OCI distribution spec's name grammar has it.
fn valid_path_component(component: &str) -> bool {
    let separator = |c: char| matches!(c, '.' | '_' | '-');
    let alphanumeric = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let starts_and_ends = component.chars().next().is_some_and(alphanumeric)
        && component.chars().last().is_some_and(alphanumeric);
    starts_and_ends
        && component.chars().all(|c| alphanumeric(c) || separator(c))
        && !component.contains("..")
        && !component.contains("___")
        && !component.contains("-.")
        && !component.contains(".-")
}

fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// An absolute path without empty, `.` or `..` components, other than `/`, and neither under
/// nor above a reserved path.
fn valid_volume_path(path: &str) -> bool {
    let Some(relative) = path.strip_prefix('/') else {
        return false;
    };
    let plain = !relative.is_empty()
        && relative
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
        && path.chars().all(|c| c.is_ascii_graphic());
    let clashes = RESERVED_PATHS.iter().any(|reserved| {
        let under = |inner: &str, outer: &str| {
            inner == outer
                || inner
                    .strip_prefix(outer)
                    .is_some_and(|r| r.starts_with('/'))
        };
        under(path, reserved) || under(reserved, path)
    });
    plain && !clashes
}

impl Workload {
    /// Checks the rules of the module docs; the first broken one is the error.
    pub fn validate(&self) -> Result<(), WorkloadError> {
        parse_image_reference(&self.image)?;
        self.validate_ports()?;
        self.validate_published()?;
        self.validate_env()?;
        if let Some(path) = &self.volume_path {
            if !valid_volume_path(path) {
                return Err(WorkloadError::VolumePath(path.to_string()));
            }
        }
        let mut seen = Vec::new();
        for capability in self.capabilities.iter() {
            if seen.contains(capability) {
                return Err(WorkloadError::CapabilityDuplicate(*capability));
            }
            seen.push(*capability);
        }
        Ok(())
    }

    fn validate_ports(&self) -> Result<(), WorkloadError> {
        let mut seen = Vec::new();
        for port in self.ports.iter() {
            if *port == 0 {
                return Err(WorkloadError::PortZero);
            }
            if seen.contains(port) {
                return Err(WorkloadError::PortDuplicate(*port));
            }
            seen.push(*port);
        }
        if !self.ports.contains(&self.health.port) {
            return Err(WorkloadError::HealthPortUndeclared(self.health.port));
        }
        if let Some(path) = &self.health.path {
            let visible = path.chars().all(|c| c.is_ascii_graphic());
            if !path.starts_with('/') || !visible {
                return Err(WorkloadError::HealthPath(path.to_string()));
            }
        }
        Ok(())
    }

    fn validate_published(&self) -> Result<(), WorkloadError> {
        for argument in self.command.iter() {
            let ports =
                published_placeholders(argument).map_err(WorkloadError::PublishedPlaceholder)?;
            if let Some(port) = ports.into_iter().find(|port| !self.ports.contains(port)) {
                return Err(WorkloadError::PublishedPortUndeclared(port));
            }
        }
        Ok(())
    }

    fn validate_env(&self) -> Result<(), WorkloadError> {
        let mut names: Vec<&str> = Vec::new();
        for variable in self.env.iter() {
            let name = variable.name.as_str();
            if !valid_env_name(name) {
                return Err(WorkloadError::EnvName(name.to_string()));
            }
            if name.starts_with(RESERVED_ENV_PREFIX) {
                return Err(WorkloadError::EnvReserved(name.to_string()));
            }
            if names.contains(&name) {
                return Err(WorkloadError::EnvDuplicate(name.to_string()));
            }
            names.push(name);
        }
        let values = self.env.iter().map(|variable| &variable.value);
        if self
            .command
            .iter()
            .chain(values)
            .any(|text| text.contains('\0'))
        {
            return Err(WorkloadError::NulByte);
        }
        Ok(())
    }

    /// Where the volume is mounted.
    pub fn volume_path(&self) -> &str {
        self.volume_path
            .as_ref()
            .map_or(DEFAULT_VOLUME_PATH, |path| path.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn workload() -> Workload {
        Workload {
            image: format!("127.0.0.1:5000/logos/node@{DIGEST}")
                .as_str()
                .try_into()
                .unwrap(),
            command: vec!["logos".try_into().unwrap()].try_into().unwrap(),
            env: vec![EnvVar {
                name: "RUST_LOG".try_into().unwrap(),
                value: "info".try_into().unwrap(),
            }]
            .try_into()
            .unwrap(),
            ports: vec![8545, 30400].try_into().unwrap(),
            health: HealthCheck {
                port: 8545,
                path: Some("/health".try_into().unwrap()),
            },
            volume_path: None,
            capabilities: Default::default(),
        }
    }

    #[test]
    fn a_pinned_image_parses_into_its_parts() {
        let reference = format!("registry.example.org:5000/a/b-c/d_e.f@{DIGEST}");
        let image = parse_image_reference(&reference).unwrap();
        assert_eq!(image.registry, "registry.example.org:5000");
        assert_eq!(image.repository, "a/b-c/d_e.f");
        assert_eq!(image.digest(), DIGEST);
        assert_eq!(workload().validate(), Ok(()));
        assert_eq!(workload().volume_path(), "/data");
    }

    #[test]
    fn unpinned_or_malformed_image_references_are_refused() {
        let hex = &DIGEST[7..];
        for reference in [
            "busybox".to_string(),
            "127.0.0.1:5000/busybox:latest".to_string(),
            format!("127.0.0.1:5000/busybox:latest@{DIGEST}").replace(":latest", ":x:y"),
            format!("busybox@{DIGEST}"),
            format!("127.0.0.1:5000/busybox@sha512:{hex}"),
            format!("127.0.0.1:5000/busybox@sha256:{}", hex.to_uppercase()),
            format!("127.0.0.1:5000/busybox@sha256:{}", &hex[1..]),
            format!("127.0.0.1:5000/busybox@sha256:{hex}0"),
            format!("127.0.0.1:5000/BusyBox@{DIGEST}"),
            format!("127.0.0.1:5000/../etc@{DIGEST}"),
            format!("127.0.0.1:5000//x@{DIGEST}"),
            format!("127.0.0.1:0/x@{DIGEST}"),
            format!("127.0.0.1:99999/x@{DIGEST}"),
            format!("-evil.org/x@{DIGEST}"),
            format!("evil.org/x@{DIGEST}@{DIGEST}"),
            format!("evil.org/x y@{DIGEST}"),
            format!("evil.org/x@sha256:{hex}\n"),
        ] {
            assert!(
                matches!(
                    parse_image_reference(&reference),
                    Err(WorkloadError::ImageReference(_))
                ),
                "{reference:?} accepted"
            );
        }
    }

    #[test]
    fn published_placeholders_name_declared_ports_only() {
        assert_eq!(published_placeholder(30400), "${PUBLISHED:30400}");
        assert_eq!(
            published_placeholders("--validate-for=a@${PUBLISHED:30400},${PUBLISHED:8545}"),
            Ok(vec![30400, 8545])
        );
        assert_eq!(published_placeholders("${PUBLISHED}"), Ok(vec![]));
        let mut declared = workload();
        declared
            .command
            .try_push(
                "--validate-for=${TENANT}@${PUBLISHED:30400}"
                    .try_into()
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(declared.validate(), Ok(()));
        for (argument, expected) in [
            (
                "${PUBLISHED:9000}",
                WorkloadError::PublishedPortUndeclared(9000),
            ),
            (
                "x${PUBLISHED:8545}${PUBLISHED:1}",
                WorkloadError::PublishedPortUndeclared(1),
            ),
            (
                "${PUBLISHED:8545",
                WorkloadError::PublishedPlaceholder("8545".into()),
            ),
            (
                "${PUBLISHED:}",
                WorkloadError::PublishedPlaceholder("}".into()),
            ),
            (
                "${PUBLISHED:+8545}",
                WorkloadError::PublishedPlaceholder("+8545}".into()),
            ),
            (
                "${PUBLISHED:70000}",
                WorkloadError::PublishedPlaceholder("70000}".into()),
            ),
            (
                "${PUBLISHED:030400}",
                WorkloadError::PublishedPlaceholder("030400}".into()),
            ),
            (
                "${PUBLISHED:8545 }",
                WorkloadError::PublishedPlaceholder("8545 }".into()),
            ),
            (
                "${PUBLISHED:0123456789012345678901}",
                WorkloadError::PublishedPlaceholder("0123456789012345".into()),
            ),
        ] {
            let mut bad = workload();
            bad.command.try_push(argument.try_into().unwrap()).unwrap();
            assert_eq!(bad.validate(), Err(expected), "{argument:?}");
        }
    }

    #[test]
    fn each_broken_rule_has_its_own_error() {
        let mut zero = workload();
        zero.ports = vec![0, 8545].try_into().unwrap();
        assert_eq!(zero.validate(), Err(WorkloadError::PortZero));
        let mut twice = workload();
        twice.ports = vec![8545, 8545].try_into().unwrap();
        assert_eq!(twice.validate(), Err(WorkloadError::PortDuplicate(8545)));
        let mut undeclared = workload();
        undeclared.health.port = 9000;
        assert_eq!(
            undeclared.validate(),
            Err(WorkloadError::HealthPortUndeclared(9000))
        );
        for path in ["health", "/he alth", "/\u{7f}"] {
            let mut bad = workload();
            bad.health.path = Some(path.try_into().unwrap());
            assert!(matches!(bad.validate(), Err(WorkloadError::HealthPath(_))));
        }
        for (name, expected) in [
            ("1X", WorkloadError::EnvName("1X".into())),
            ("A-B", WorkloadError::EnvName("A-B".into())),
            ("", WorkloadError::EnvName("".into())),
            (
                "LOGOS_CHAIN_RPC",
                WorkloadError::EnvReserved("LOGOS_CHAIN_RPC".into()),
            ),
            ("RUST_LOG", WorkloadError::EnvDuplicate("RUST_LOG".into())),
        ] {
            let mut bad = workload();
            bad.env
                .try_push(EnvVar {
                    name: name.try_into().unwrap(),
                    value: "x".try_into().unwrap(),
                })
                .unwrap();
            assert_eq!(bad.validate(), Err(expected), "{name:?}");
        }
        let mut nul = workload();
        nul.command.try_push("a\0b".try_into().unwrap()).unwrap();
        assert_eq!(nul.validate(), Err(WorkloadError::NulByte));
        for path in [
            "/",
            "data",
            "/data/",
            "/a//b",
            "/a/../b",
            "/./a",
            "/proc",
            "/proc/x",
            "/sys",
            "/dev/shm",
            "/tmp",
            "/opt",
            "/opt/logos/x",
            "/a b",
        ] {
            let mut bad = workload();
            bad.volume_path = Some(path.try_into().unwrap());
            assert!(
                matches!(bad.validate(), Err(WorkloadError::VolumePath(_))),
                "{path:?} accepted"
            );
        }
        let mut good = workload();
        good.volume_path = Some("/var/lib/node".try_into().unwrap());
        assert_eq!(good.validate(), Ok(()));
        assert_eq!(good.volume_path(), "/var/lib/node");
        let mut caps = workload();
        caps.capabilities = vec![Capability::NetBindService, Capability::NetBindService]
            .try_into()
            .unwrap();
        assert_eq!(
            caps.validate(),
            Err(WorkloadError::CapabilityDuplicate(
                Capability::NetBindService
            ))
        );
    }
}
