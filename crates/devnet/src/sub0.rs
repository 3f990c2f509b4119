//! The devnet's sub0layer: provider agents, provisioners and the default catalog.
//!
//! After the validators are up, `logos devnet` (unless `--providers 0`):
//! 1. builds the project's OCI images and pushes them to the loopback registry
//!    (`scripts/images`: `busybox`, `logos-node` from this very binary, `litecoin-node` and
//!    `monero-node`), and writes
//!    `<dir>/images.toml` (`name = "registry/logos/name@sha256:…"`), or takes `--images FILE`;
//! 2. publishes with the privileged `dev` key: region 1 `local`, products `full-node`
//!    (1 vCPU, 1024 MiB, 10 GiB, 4 compute units) and `micro` (1 vCPU, 64 MiB, 1 GiB, 1 unit),
//!    a compute-hosted price of [`PRICE_PER_UNIT`] per compute unit per block, and the template
//!    files of the repository's `templates/` ([`DEFAULT_TEMPLATES`], compiled in): template 0
//!    "Logos full node" (the `logos-node` image running `logos node run --role full`: a p2p
//!    full node that dials the validators through the agent's p2p relays, serves JSON-RPC and
//!    `/health` on [`FULL_NODE_RPC_PORT`] and offers its tenant a signed registration, which
//!    the tenant's `lease create --wait` or `--demo` submits), template 1 "Static web server",
//!    and templates 2 "Litecoin regtest node" and 3 "Monero regtest node" (the `litecoin-node`
//!    and `monero-node` images: Debian's litecoind and monerod, healthy once synced), and
//!    template 4 "Logos validator" (`logos-node` in the validator role: its consensus key
//!    made and kept in the environment, which offers its tenant a full-node registration and
//!    a validator intent for `logos stake validate --node`);
//! 3. registers `provider-<k>` as providers (agent at `10.88.N.1:agent_base_port + k`, its
//!    bridge's address, N = `network_base_index + k`; on `--hosts`, its host's address; agent
//!    key `agent-<k>`) and admits them, registers `provisioner-<i>` (one per validator, at
//!    least [`provisioner_count`]: enough to assign and cross-check a lease) with a stake;
//! 4. with an attested genesis (swtpm installed, no `--unattested`): sets the attestation
//!    period to [`ATTESTATION_PERIOD_BLOCKS`], makes `dev` a deployer, approves the root of
//!    the devnet's own TPM CA (`<dir>/tpm-ca`, swtpm's `swtpm_localca`) as the only
//!    endorsement root, and approves the reference of a known-good machine (a fresh swtpm measured with the agents' collectors,
//!    the file snapshot over `<dir>/machine-release`) for the compute-hosted class;
//! 5. starts one `logos agent run` per provider (runc driver; needs root: namespaces, cgroups,
//!    loop devices, the firewall) and one `logos provisioner run` per provisioner, each against
//!    the RPC of validator `i mod validators`, on its host; each agent attests with a swtpm of
//!    its own (`<dir>/agent-<k>/tpm`, its TCTI in `tpm/tcti`, its EK certified by the devnet's
//!    CA, whose certificates make its chain), and the devnet waits until every
//!    machine has an accepted report (the drawn provisioner challenges each registration).

use crate::{
    hosts::Role,
    network::{Daemon, DevnetArgs, Layout, Network},
};
use anyhow::{bail, Context, Result};
use futures::future::try_join_all;
use logos_client::{
    keystore,
    template::{Images, TemplateFile},
    tenant::{create_lease, watch},
    Client, Wallet,
};
use logos_primitives::Amount;
use logos_primitives::NodeKey;
use logos_types::{
    catalog::{self, Product, ProductId, Template, TemplateId},
    dvci::{self, ProviderId, ProviderStatus, RegionId, ResourceClass, Resources},
    market, provisioning, Call,
};
use std::{ffi::OsString, time::Duration};

/// The devnet's attestation period, blocks (a minute at the devnet's 25 ms blocks: a changed
/// machine is excluded within it, and an agent restart fits well inside it).
pub const ATTESTATION_PERIOD_BLOCKS: u64 = 2_400;
/// Longest wait for every provider's first accepted report.
pub const ATTESTED_WAIT: Duration = Duration::from_secs(180);

/// Price of a compute-hosted compute unit per block, smallest unit.
pub const PRICE_PER_UNIT: u128 = 1_000;
/// Bond of each devnet provider, smallest unit.
pub const PROVIDER_BOND: u128 = 1_000_000_000;
/// Stake of each devnet provisioner, smallest unit.
pub const PROVISIONER_STAKE: u128 = 100_000_000;
/// Region of the devnet.
pub const REGION: RegionId = RegionId(1);
/// JSON-RPC (and health) port of the full node template.
pub const FULL_NODE_RPC_PORT: u16 = 8545;
/// The default registry: Debian's docker-registry on loopback (`scripts/registry`).
pub const DEFAULT_REGISTRY: &str = "127.0.0.1:5000";
/// The registry's port on a `--hosts` devnet's bridge address.
pub const REGISTRY_PORT: u16 = 5000;
/// The template files of the default catalog, in the order they are published (ids 0, 1, …).
pub const DEFAULT_TEMPLATES: [(&str, &str); 5] = [
    (
        "templates/logos-full-node.toml",
        include_str!("../../../templates/logos-full-node.toml"),
    ),
    (
        "templates/static-web-server.toml",
        include_str!("../../../templates/static-web-server.toml"),
    ),
    (
        "templates/litecoin-regtest-node.toml",
        include_str!("../../../templates/litecoin-regtest-node.toml"),
    ),
    (
        "templates/monero-regtest-node.toml",
        include_str!("../../../templates/monero-regtest-node.toml"),
    ),
    (
        "templates/logos-validator.toml",
        include_str!("../../../templates/logos-validator.toml"),
    ),
];

/// Provisioners the devnet runs: one per validator, and at least as many as a lease needs to
/// be assigned and checked (`provisioning`'s default `min_provisioners`).
pub fn provisioner_count(validators: usize) -> usize {
    let needed = logos_types::provisioning::Parameters::default().min_provisioners;
    validators.max(usize::from(needed))
}

/// Names of the funded keys the sub0layer needs (`agent-<k>` sign their agent's stats).
pub fn key_names(validators: usize, providers: usize) -> impl Iterator<Item = String> {
    (0..providers)
        .flat_map(|k| [format!("provider-{k}"), format!("agent-{k}")])
        .chain((0..provisioner_count(validators)).map(|i| format!("provisioner-{i}")))
}

/// A catalog: products and templates with their ids.
pub struct Catalog {
    /// (product id, product).
    pub products: Vec<(ProductId, Product)>,
    /// (template id, template).
    pub templates: Vec<(TemplateId, Template)>,
}

/// The default catalog (see the module docs), its templates from [`DEFAULT_TEMPLATES`] with
/// image names resolved through `images`.
pub fn default_catalog(images: &Images) -> Result<Catalog> {
    let products = vec![
        (
            ProductId(0),
            Product {
                name: "full-node".try_into()?,
                resources: Resources {
                    vcpu: 1,
                    memory_mib: 1_024,
                    disk_gib: 10,
                    gpus: 0,
                },
                class: ResourceClass::ComputeHosted,
                compute_units: 4,
            },
        ),
        (
            ProductId(1),
            Product {
                name: "micro".try_into()?,
                resources: Resources {
                    vcpu: 1,
                    memory_mib: 64,
                    disk_gib: 1,
                    gpus: 0,
                },
                class: ResourceClass::ComputeHosted,
                compute_units: 1,
            },
        ),
    ];
    let mut templates = Vec::new();
    for (id, (path, text)) in (0u32..).zip(DEFAULT_TEMPLATES) {
        let file = TemplateFile::parse(text).with_context(|| path.to_string())?;
        let product = products
            .iter()
            .find(|(product_id, product)| match &file.product {
                logos_client::template::ProductRef::Id(wanted) => product_id.get() == *wanted,
                logos_client::template::ProductRef::Name(name) => product.name == name.as_str(),
            })
            .map(|(product_id, _)| *product_id)
            .with_context(|| format!("{path}: no such product"))?;
        let (template, _) = file
            .template(product, images)
            .with_context(|| path.to_string())?;
        templates.push((TemplateId(id), template));
    }
    Ok(Catalog {
        products,
        templates,
    })
}

/// Makes the project's images available and returns them: `--images FILE` if given, else
/// `scripts/images` (from the checkout) builds them from this binary, pushes them to
/// `registry` and writes them; either way they are written to `<dir>/images.toml`.
pub fn prepare_images(
    layout: &Layout,
    given: Option<&std::path::Path>,
    registry: &str,
) -> Result<Images> {
    let text = match given {
        Some(path) => std::fs::read_to_string(path).with_context(|| path.display().to_string())?,
        None => {
            let Some(script) = project_script("images") else {
                bail!("no images: pass --images FILE, or run the devnet from the repository (scripts/images builds them)");
            };
            eprintln!(
                "building the project's images and pushing them to {registry} (scripts/images)…"
            );
            let output = std::process::Command::new(script)
                .arg("--logos")
                .arg(std::env::current_exe()?)
                .args(["--registry", registry])
                .output()?;
            if !output.status.success() {
                bail!(
                    "scripts/images failed: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                );
            }
            String::from_utf8(output.stdout)?
        }
    };
    let images = Images::parse(&text)?;
    std::fs::write(&layout.images, images.to_toml())?;
    Ok(images)
}

fn wallet(layout: &Layout, name: &str) -> Result<Wallet> {
    let key = keystore::load(&layout.keystore, name).with_context(|| format!("key {name}"))?;
    Ok(Wallet::new(key))
}

/// Publishes the region and catalog, registers providers and provisioners (see the module
/// docs). Returns the provider ids in order.
pub async fn bootstrap(
    client: &Client,
    args: &DevnetArgs,
    layout: &Layout,
    validators: usize,
    images: &Images,
) -> Result<Vec<ProviderId>> {
    let (region, _) = client.map::<dvci::Regions>(&REGION).await?;
    if region.is_some() {
        // A resumed devnet: the catalog, providers (ids 0, 1, … in order) and provisioners exist.
        return Ok((0..layout.providers as u64).map(ProviderId).collect());
    }
    // The region and catalog first (providers need the region); each batch is submitted at
    // once and waited for together, and provisioners register concurrently.
    let dev = wallet(layout, "dev")?;
    let Catalog {
        products,
        templates,
    } = default_catalog(images)?;
    let mut calls = vec![Call::Dvci(dvci::Call::CreateRegion {
        region: REGION,
        name: "local".try_into()?,
    })];
    calls.extend(
        products
            .into_iter()
            .map(|(id, product)| Call::Catalog(catalog::Call::SetProduct { id, product })),
    );
    // Published in order: template i takes id i.
    calls.extend(
        templates
            .into_iter()
            .map(|(_, template)| Call::Catalog(catalog::Call::AddTemplate { template })),
    );
    calls.push(Call::Market(market::Call::SetPrice {
        class: ResourceClass::ComputeHosted,
        price: Amount(PRICE_PER_UNIT),
    }));
    if attested(layout)? {
        calls.extend(attestation_calls(layout, &dev)?);
    }
    client.execute_all(&dev, calls).await?;
    let owners = (0..layout.providers)
        .map(|k| wallet(layout, &format!("provider-{k}")))
        .collect::<Result<Vec<_>>>()?;
    // One after another, so that `provider-<k>` gets provider id k (a resumed devnet and the
    // agents' network indices rely on it).
    let mut providers = Vec::with_capacity(owners.len());
    for (k, owner) in owners.iter().enumerate() {
        let register = dvci::Call::RegisterProvider {
            endpoint: agent_endpoint(args, layout, k).as_str().try_into()?,
            inventory: Resources {
                vcpu: 4,
                memory_mib: 8_192,
                disk_gib: 100,
                gpus: 0,
            },
            class: ResourceClass::ComputeHosted,
            region: REGION,
            bond: Amount(PROVIDER_BOND),
        };
        let provider = client.register_provider(owner, register).await?.0;
        let agent = keystore::load(&layout.keystore, &format!("agent-{k}"))?;
        let key = NodeKey::from_public_key(&commonware_cryptography::Signer::public_key(&agent));
        client
            .execute(owner, Call::Dvci(dvci::Call::SetAgentKey { provider, key }))
            .await?;
        providers.push(provider);
    }
    let admissions = providers
        .iter()
        .map(|provider| {
            Call::Dvci(dvci::Call::SetProviderStatus {
                provider: *provider,
                status: ProviderStatus::Active,
            })
        })
        .collect();
    let provisioners = (0..provisioner_count(validators))
        .map(|i| wallet(layout, &format!("provisioner-{i}")))
        .collect::<Result<Vec<_>>>()?;
    let stake = Call::Provisioning(provisioning::Call::RegisterProvisioner {
        stake: Amount(PROVISIONER_STAKE),
    });
    let staked = try_join_all(
        provisioners
            .iter()
            .map(|provisioner| client.execute(provisioner, stake.clone())),
    );
    let (admitted, staked) = futures::join!(client.execute_all(&dev, admissions), staked);
    admitted?;
    staked?;
    Ok(providers)
}

/// Whether the devnet's providers attest (its genesis is not `unattested`).
pub fn attested(layout: &Layout) -> Result<bool> {
    Ok(!logos_types::Genesis::load(&layout.genesis)?
        .params
        .unattested)
}

/// The file-integrity snapshot the devnet's machines report: a small release file the devnet
/// writes once (`<dir>/machine-release`), standing for the system a real machine's snapshot
/// covers (a rebuilt `logos` binary must not exclude every provider of a running devnet).
fn attested_files(layout: &Layout) -> Result<Vec<std::path::PathBuf>> {
    let path = layout.dir.join("machine-release");
    if !path.exists() {
        std::fs::write(&path, "logos-devnet machine, release 1\n")?;
    }
    Ok(vec![path])
}

/// The directory of the devnet's TPM certificate authority (swtpm's `swtpm_localca`): it
/// certifies the EK of every software TPM of this devnet, and no other devnet's.
fn tpm_ca_dir(layout: &Layout) -> std::path::PathBuf {
    layout.dir.join("tpm-ca")
}

/// The privileged calls that set the devnet's attestation up: the period
/// ([`ATTESTATION_PERIOD_BLOCKS`]), `dev` as a deployer, the devnet's TPM CA approved as an
/// endorsement root, and the reference of a known-good machine (a fresh software TPM measured
/// with the collectors the agents use) approved and made the compute-hosted class's.
fn attestation_calls(layout: &Layout, dev: &Wallet) -> Result<Vec<Call>> {
    use logos_mia_collect::{
        files::FileSnapshot,
        swtpm::{LocalCa, Swtpm},
        tamper::FileTamper,
        tpm::TssTpm,
    };
    use logos_types::attestation::{self, Parameters};
    let dir = tempfile_dir(layout, "golden-tpm")?;
    let ca = LocalCa::at(&tpm_ca_dir(layout))?;
    let swtpm =
        Swtpm::start_certified(&dir, 0, &ca).context("starting the golden machine's swtpm")?;
    // The golden machine's manufacture created the CA's root (when it was new).
    let root = logos_mia::endorsement::certificate_key_hash(&ca.root()?)
        .map_err(|e| anyhow::anyhow!("the devnet's TPM CA root: {e}"))?;
    let mut tpm = TssTpm::open(&swtpm.tcti())?;
    let reference = logos_agent::attest::measured_reference(
        &mut tpm,
        ResourceClass::ComputeHosted,
        None,
        &FileSnapshot::Paths(attested_files(layout)?),
        &FileTamper::default(),
        false,
    )?;
    drop(tpm);
    drop(swtpm);
    let _ = std::fs::remove_dir_all(&dir);
    let id = reference.id();
    let params = Parameters {
        period_blocks: ATTESTATION_PERIOD_BLOCKS,
        // Half a minute: room for an agent's retries; a silent challenger (an operator's
        // provisioner not running yet) costs that long before another is drawn.
        challenge_timeout_blocks: ATTESTATION_PERIOD_BLOCKS / 2,
        // The longest the chain allows (shorter than the period, as it requires).
        nonce_window_blocks: logos_types::attestation::NONCE_WINDOW_MAX_BLOCKS,
        ..Parameters::default()
    };
    Ok(vec![
        Call::Attestation(attestation::Call::SetParams { params }),
        Call::Attestation(attestation::Call::SetDeployer {
            deployer: dev.address(),
            authorized: true,
        }),
        Call::Attestation(attestation::Call::SetEndorsementRoot {
            root: attestation::Digest(root),
            approved: true,
        }),
        Call::Attestation(attestation::Call::ApproveReference { reference }),
        Call::Attestation(attestation::Call::SetClassReference {
            class: ResourceClass::ComputeHosted,
            reference: id,
        }),
    ])
}

/// An empty directory `name` under the devnet directory.
fn tempfile_dir(layout: &Layout, name: &str) -> Result<std::path::PathBuf> {
    let dir = layout.dir.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Waits until every provider's machine has an accepted report (bounded by [`ATTESTED_WAIT`]).
async fn wait_attested(client: &Client, providers: &[ProviderId]) -> Result<()> {
    use logos_types::attestation::{MachineStatus, Machines};
    let started = std::time::Instant::now();
    for provider in providers {
        loop {
            let (machine, _) = client.map::<Machines>(provider).await?;
            match machine {
                Some(machine)
                    if machine.status == MachineStatus::Attesting && machine.last.is_some() =>
                {
                    eprintln!(
                        "provider {provider} attested ({} ms into the wait)",
                        started.elapsed().as_millis()
                    );
                    break;
                }
                Some(machine) if matches!(machine.status, MachineStatus::Excluded { .. }) => {
                    bail!(
                        "provider {provider}'s machine was excluded: {:?}",
                        machine.status
                    )
                }
                _ if started.elapsed() > ATTESTED_WAIT => bail!(
                    "provider {provider} did not attest within {} s (see its agent's log)",
                    ATTESTED_WAIT.as_secs()
                ),
                _ => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }
    Ok(())
}

/// Where agent `k` listens: its host's address (`--hosts`), or on one host its bridge's
/// address, where it also publishes environments' ports (the chain checks that an endpoint is
/// the provider's own host).
fn agent_endpoint(args: &DevnetArgs, layout: &Layout, k: usize) -> String {
    let port = layout.agent_base_port as usize + k;
    match args.host(Role::Provider(k)) {
        Some(host) => format!("{}:{port}", host.address),
        None => {
            let index = (args.network_base_index as usize + k) % 256;
            format!("10.88.{index}.1:{port}")
        }
    }
}

/// Host commands the sub0layer needs besides the container driver's
/// ([`logos_agent::container::HOST_COMMANDS`]): the image build's and the registry's, and the
/// Debian package of each.
const IMAGE_COMMANDS: [(&str, &str); 9] = [
    ("skopeo", "skopeo"),
    ("docker-registry", "docker-registry"),
    ("busybox", "busybox-static"),
    ("curl", "curl"),
    ("nsenter", "util-linux"),
    // The other chains' node images (the catalog's Litecoin and Monero nodes).
    ("litecoin-cli", "litecoind"),
    ("monerod", "monero"),
    // The machines' software TPMs (attestation).
    ("swtpm", "swtpm"),
    ("swtpm_setup", "swtpm-tools"),
];

/// Why this host cannot run the sub0layer's agents, if it cannot: not root, or a command of
/// [`HOST_COMMANDS`] missing.
fn host_unready() -> Option<String> {
    if !running_as_root() {
        return Some(
            "the container driver needs root (namespaces, cgroups, loop devices, the firewall)"
                .into(),
        );
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut missing: Vec<String> = logos_agent::container::HOST_COMMANDS
        .iter()
        .chain(IMAGE_COMMANDS.iter())
        .filter(|(command, _)| !std::env::split_paths(&path).any(|dir| dir.join(command).is_file()))
        .map(|(command, package)| format!("{command} (Debian package {package})"))
        .collect();
    let profile = logos_agent::container::seccomp::DEFAULT_PROFILE_PATH;
    if !std::path::Path::new(profile).is_file() {
        missing.push(format!(
            "{profile} (Debian package golang-github-containers-common)"
        ));
    }
    (!missing.is_empty()).then(|| format!("missing {}", missing.join(", ")))
}

/// Makes the host ready for the sub0layer: when commands are missing and the project's
/// `scripts/install-deps` is at hand (a checkout), runs it. `Ok(None)` when ready, else the
/// reason it is not (the devnet then runs the chain alone).
pub fn prepare_host() -> Result<Option<String>> {
    let Some(reason) = host_unready() else {
        return Ok(None);
    };
    let script = project_script("install-deps");
    if let (true, Some(script)) = (running_as_root(), script) {
        eprintln!(
            "the sub0layer needs host packages ({reason}); running {}…",
            script.display()
        );
        let status = std::process::Command::new(&script).status()?;
        if !status.success() {
            return Ok(Some(format!(
                "{reason}; {} failed ({status})",
                script.display()
            )));
        }
    }
    Ok(host_unready())
}

/// The images as agents pull them: on a `--hosts` devnet from the registry on the devnet
/// bridge (started here, serving the same storage as the loopback one).
fn images_for_agents(args: &DevnetArgs, layout: &Layout, images: Images) -> Result<Images> {
    let Some(hosts) = args.host_layout() else {
        return Ok(images);
    };
    let address = format!("{}:{REGISTRY_PORT}", hosts.gateway());
    let script =
        project_script("registry").context("scripts/registry: run --hosts from the repository")?;
    let status = std::process::Command::new(script)
        .args(["start", &address])
        .status()?;
    if !status.success() {
        bail!("scripts/registry could not start a registry at {address}");
    }
    let moved = images
        .0
        .into_iter()
        .map(|(name, reference)| {
            let path = reference
                .split_once('/')
                .map_or(reference.as_str(), |(_, path)| path);
            (name, format!("{address}/{path}"))
        })
        .collect();
    let images = Images(moved);
    std::fs::write(&layout.images, images.to_toml())?;
    Ok(images)
}

/// `logos agent run` arguments of provider `k`.
fn agent_args(
    args: &DevnetArgs,
    layout: &Layout,
    k: usize,
    provider: ProviderId,
    rpc: &str,
    registries: &[String],
    attest: bool,
) -> Vec<OsString> {
    let index = args.network_base_index as usize + k;
    let dir = layout.dir.join(format!("agent-{k}"));
    // One host: validators see relayed connections from loopback and tenants reach the
    // bridge address. Many hosts: everything goes through the provider host's address.
    let address = args.address(Role::Provider(k));
    let mut agent: Vec<String> = vec![
        "agent".into(),
        "run".into(),
        "--provider".into(),
        provider.to_string(),
        "--rpc".into(),
        rpc.into(),
        "--listen".into(),
        agent_endpoint(args, layout, k),
        "--network-index".into(),
        index.to_string(),
        "--state-dir".into(),
        dir.join("state").display().to_string(),
        "--genesis".into(),
        layout.genesis.display().to_string(),
        "--relay-port".into(),
        rpc.rsplit(':').next().unwrap_or("8545").to_string(),
        "--p2p-egress-ip".into(),
        address.to_string(),
        "--key-file".into(),
        layout
            .keystore
            .join(format!("agent-{k}.key"))
            .display()
            .to_string(),
        "--destroy-on-exit".into(),
    ];
    if args.hosts {
        agent.extend(["--public-ip".into(), address.to_string()]);
    }
    if attest {
        // A software TPM per machine, started by its agent (a restart is a reboot), its EK
        // certified by the devnet's own CA (the root its chain approves).
        agent.extend(["--swtpm".into(), dir.join("tpm").display().to_string()]);
        agent.extend([
            "--swtpm-ca".into(),
            tpm_ca_dir(layout).display().to_string(),
        ]);
        // The software TPM's machine has no kernel measuring into it: its IMA list is this
        // file (absent: no IMA), written by whoever plays that kernel (the tests).
        agent.extend([
            "--ima-log".into(),
            dir.join("ima.log").display().to_string(),
        ]);
        for file in attested_files(layout).unwrap_or_default() {
            agent.extend(["--attest-file".into(), file.display().to_string()]);
        }
    }
    for registry in registries {
        agent.extend(["--insecure-registry".into(), registry.clone()]);
    }
    agent.into_iter().map(OsString::from).collect()
}

/// Bootstraps the sub0layer and starts its daemons into `network`.
pub fn start(args: &DevnetArgs, layout: &Layout, network: &mut Network) -> Result<()> {
    if let Some(reason) = host_unready() {
        bail!("{reason}; run scripts/install-deps as root, or pass --providers 0");
    }
    let rpc = network.validators[0].rpc.clone();
    let images = prepare_images(layout, args.images.as_deref(), &args.registry)?;
    let images = images_for_agents(args, layout, images)?;
    let runtime = crate::runtime()?;
    let attest = attested(layout)?;
    eprintln!("publishing the catalog, registering providers and provisioners…");
    let providers = runtime.block_on(async {
        let client = Client::connect(&rpc).await?;
        bootstrap(&client, args, layout, network.validators.len(), &images).await
    })?;
    let mut registries: Vec<String> = images
        .0
        .values()
        .filter_map(|reference| {
            reference
                .split_once('/')
                .map(|(registry, _)| registry.to_string())
        })
        .collect();
    registries.sort();
    registries.dedup();
    for (k, provider) in providers.iter().enumerate() {
        let rpc = &network.validators[k % network.validators.len()].rpc;
        let agent = agent_args(args, layout, k, *provider, rpc, &registries, attest);
        eprintln!("starting agent {k} for provider {provider}…");
        let log = layout.dir.join(format!("agent-{k}")).join("agent.log");
        let daemon = Daemon::start(
            format!("agent-{k}"),
            agent,
            args.host(Role::Provider(k)),
            log,
        )?;
        network.daemons.push(daemon);
    }
    let validators = network.validators.len();
    for i in 0..provisioner_count(validators) {
        if args.external_provisioners.contains(&i) {
            eprintln!("provisioner {i} is run by its operator");
            continue;
        }
        let dir = layout.dir.join(format!("provisioner-{i}"));
        let key = layout.keystore.join(format!("provisioner-{i}.key"));
        let command: Vec<OsString> = vec![
            "provisioner".into(),
            "run".into(),
            "--key-file".into(),
            key.into(),
            "--rpc".into(),
            network.validators[i % validators].rpc.clone().into(),
            "--genesis".into(),
            layout.genesis.clone().into(),
        ];
        eprintln!("starting provisioner {i}…");
        // A provisioner runs beside its validator (on its host).
        let host = args.host(Role::Validator(i % validators));
        let daemon = Daemon::start(
            format!("provisioner-{i}"),
            command,
            host,
            dir.join("provisioner.log"),
        )?;
        network.daemons.push(daemon);
    }
    if attest {
        eprintln!("waiting for the providers' machines to attest (registration, challenge, first report)…");
        runtime.block_on(async {
            let client = Client::connect(&rpc).await?;
            wait_attested(&client, &providers).await
        })?;
    }
    Ok(())
}

/// The project's `scripts/<name>` when the devnet runs from the repository (the current
/// directory or one above it).
pub fn project_script(name: &str) -> Option<std::path::PathBuf> {
    let here = std::env::current_dir().ok()?;
    here.ancestors()
        .map(|dir| dir.join("scripts").join(name))
        .find(|script| script.is_file())
}

fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

/// `logos devnet --demo`: leases the "Logos full node" template with the `dev` key and prints
/// each step until the leased node reports a synced finalized height.
pub async fn demo(rpc: &str, layout: &Layout) -> Result<()> {
    let client = Client::connect(rpc).await?;
    let dev = wallet(layout, "dev")?;
    let started = std::time::Instant::now();
    println!("demo: leasing template 0 \"Logos full node\" for 36000 blocks…");
    let (lease, height) = create_lease(&client, &dev, TemplateId(0), REGION, 36_000).await?;
    println!("demo: lease {lease} finalized at height {height}");
    let mut say = |step: String| println!("demo [{:>6} ms] {step}", started.elapsed().as_millis());
    watch(
        &client,
        lease,
        Duration::from_secs(180),
        Some(&dev),
        &mut say,
    )
    .await?;
    println!(
        "demo: done; inspect with `logos lease status {lease} --rpc {rpc}` and `logos env logs {lease} --keystore {} --from dev --genesis {} --rpc {rpc}`",
        layout.keystore.display(),
        layout.genesis.display()
    );
    Ok(())
}
