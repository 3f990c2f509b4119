//! The devnet's sub0layer: provider agents, provisioners and the default catalog.
//!
//! After the validators are up, `logos devnet` (unless `--providers 0`):
//! 1. publishes with the privileged `dev` key: region 1 `local`, products `full-node`
//!    (1 vCPU, 1024 MiB, 10 GiB, 4 compute units) and `micro` (1 vCPU, 64 MiB, 1 GiB, 1 unit),
//!    a compute-hosted price of [`PRICE_PER_UNIT`] per compute unit per block, template 0
//!    "Logos full node" (`logos node run --role full`: a p2p full node that dials the
//!    validators through the agent's p2p relays, serves JSON-RPC and `/health` on
//!    [`FULL_NODE_RPC_PORT`] and offers its tenant a signed registration, which the tenant's
//!    `lease create --wait` or `--demo` submits) and template 1 "Static web server";
//! 2. registers `provider-<k>` as providers (agent at `127.0.0.1:agent_base_port + k`) and
//!    admits them, registers `provisioner-<i>` (one per validator) with a stake;
//! 3. starts one `logos agent run` per provider (needs root: namespaces, cgroups) and one
//!    `logos provisioner run` per validator, each against its validator's RPC.

use crate::network::{spawn_logos, DevnetArgs, Layout, Network};
use anyhow::{bail, Context, Result};
use futures::future::try_join_all;
use logos_client::{
    keystore,
    tenant::{create_lease, watch},
    Client, Wallet,
};
use logos_primitives::Amount;
use logos_types::{
    catalog::{self, Product, ProductId, Template, TemplateId, Workload},
    dvci::{self, ProviderId, ProviderStatus, RegionId, ResourceClass, Resources},
    market, provisioning, Call,
};
use std::{ffi::OsString, time::Duration};

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

/// Names of the funded keys the sub0layer needs.
pub fn key_names(validators: usize, providers: usize) -> impl Iterator<Item = String> {
    (0..providers)
        .map(|k| format!("provider-{k}"))
        .chain((0..validators).map(|i| format!("provisioner-{i}")))
}

/// A catalog: products and templates with their ids.
pub struct Catalog {
    /// (product id, product).
    pub products: Vec<(ProductId, Product)>,
    /// (template id, template).
    pub templates: Vec<(TemplateId, Template)>,
}

/// A workload running `command` that declares `port` and is probed on it.
pub fn workload(command: &[&str], port: u16) -> Result<Workload> {
    let command = command
        .iter()
        .map(|part| (*part).try_into())
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Workload {
        image: Default::default(),
        command: command.try_into()?,
        ports: vec![port].try_into()?,
        health_port: port,
    })
}

/// The default catalog (see the module docs).
pub fn default_catalog() -> Result<Catalog> {
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
    let node = [
        "/opt/logos/bin/logos",
        "node",
        "run",
        "--role",
        "full",
        "--genesis",
        "/opt/logos/genesis.toml",
        "--data-dir",
        "/data/node",
        "--rpc-listen",
        "0.0.0.0:8545",
        "--validator-addresses",
        "${CHAIN_P2P}",
        "--register-for",
        "${TENANT}@${P2P_EGRESS}",
    ];
    let web = "mkdir -p www && echo ok > www/health && cd www && exec python3 -m http.server 8080";
    let templates = vec![
        (
            TemplateId(0),
            Template {
                name: "Logos full node".try_into()?,
                product: ProductId(0),
                workload: workload(&node, FULL_NODE_RPC_PORT)?,
            },
        ),
        (
            TemplateId(1),
            Template {
                name: "Static web server".try_into()?,
                product: ProductId(1),
                workload: workload(&["sh", "-c", web], 8080)?,
            },
        ),
    ];
    Ok(Catalog {
        products,
        templates,
    })
}

fn wallet(layout: &Layout, name: &str) -> Result<Wallet> {
    let key = keystore::load(&layout.keystore, name).with_context(|| format!("key {name}"))?;
    Ok(Wallet::new(key))
}

/// Publishes the region and catalog, registers providers and provisioners (see the module
/// docs). Returns the provider ids in order.
pub async fn bootstrap(
    client: &Client,
    layout: &Layout,
    validators: usize,
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
    } = default_catalog()?;
    let mut calls = vec![Call::Dvci(dvci::Call::CreateRegion {
        region: REGION,
        name: "local".try_into()?,
    })];
    calls.extend(
        products
            .into_iter()
            .map(|(id, product)| Call::Catalog(catalog::Call::SetProduct { id, product })),
    );
    calls.extend(
        templates
            .into_iter()
            .map(|(id, template)| Call::Catalog(catalog::Call::SetTemplate { id, template })),
    );
    calls.push(Call::Market(market::Call::SetPrice {
        class: ResourceClass::ComputeHosted,
        price: Amount(PRICE_PER_UNIT),
    }));
    client.execute_all(&dev, calls).await?;
    let owners = (0..layout.providers)
        .map(|k| wallet(layout, &format!("provider-{k}")))
        .collect::<Result<Vec<_>>>()?;
    // One after another, so that `provider-<k>` gets provider id k (a resumed devnet and the
    // agents' network indices rely on it).
    let mut providers = Vec::with_capacity(owners.len());
    for (k, owner) in owners.iter().enumerate() {
        let register = dvci::Call::RegisterProvider {
            endpoint: agent_endpoint(layout, k).as_str().try_into()?,
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
        providers.push(client.register_provider(owner, register).await?.0);
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
    let provisioners = (0..validators)
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

fn agent_endpoint(layout: &Layout, k: usize) -> String {
    format!("127.0.0.1:{}", layout.agent_base_port as usize + k)
}

/// Host commands the sandbox driver runs, and the Debian package of each.
const HOST_COMMANDS: [(&str, &str); 4] = [
    ("bwrap", "bubblewrap"),
    ("ip", "iproute2"),
    ("iptables", "iptables"),
    ("python3", "python3-minimal"),
];

/// Why this host cannot run the sub0layer's agents, if it cannot: not root, or a command of
/// [`HOST_COMMANDS`] missing.
fn host_unready() -> Option<String> {
    if !running_as_root() {
        return Some("the sandbox driver needs root (network namespaces, cgroups)".into());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let missing: Vec<String> = HOST_COMMANDS
        .iter()
        .filter(|(command, _)| !std::env::split_paths(&path).any(|dir| dir.join(command).is_file()))
        .map(|(command, package)| format!("{command} (Debian package {package})"))
        .collect();
    (!missing.is_empty()).then(|| format!("missing {}", missing.join(", ")))
}

/// Makes the host ready for the sub0layer: when commands are missing and the project's
/// `scripts/install-deps` is at hand (a checkout), runs it. `Ok(None)` when ready, else the
/// reason it is not (the devnet then runs the chain alone).
pub fn prepare_host() -> Result<Option<String>> {
    let Some(reason) = host_unready() else {
        return Ok(None);
    };
    let script = std::path::Path::new("scripts/install-deps");
    if running_as_root() && script.is_file() {
        eprintln!(
            "the sub0layer needs host packages ({reason}); running {}…",
            script.display()
        );
        let status = std::process::Command::new(script).status()?;
        if !status.success() {
            return Ok(Some(format!(
                "{reason}; {} failed ({status})",
                script.display()
            )));
        }
    }
    Ok(host_unready())
}

/// Bootstraps the sub0layer and starts its daemons into `network`.
pub fn start(args: &DevnetArgs, layout: &Layout, network: &mut Network) -> Result<()> {
    if let Some(reason) = host_unready() {
        bail!("{reason}; run scripts/install-deps as root, or pass --providers 0");
    }
    let rpc = network.validators[0].rpc.clone();
    let runtime = crate::runtime()?;
    eprintln!("publishing the catalog, registering providers and provisioners…");
    let providers = runtime.block_on(async {
        let client = Client::connect(&rpc).await?;
        bootstrap(&client, layout, network.validators.len()).await
    })?;
    for (k, provider) in providers.iter().enumerate() {
        let rpc = &network.validators[k % network.validators.len()].rpc;
        let index = args.network_base_index as usize + k;
        let dir = layout.dir.join(format!("agent-{k}"));
        let agent: Vec<OsString> = [
            "agent".into(),
            "run".into(),
            "--provider".into(),
            provider.to_string(),
            "--rpc".into(),
            rpc.clone(),
            "--listen".into(),
            agent_endpoint(layout, k),
            "--network-index".into(),
            index.to_string(),
            "--state-dir".into(),
            dir.join("state").display().to_string(),
            "--genesis".into(),
            layout.genesis.display().to_string(),
            "--relay-port".into(),
            rpc.rsplit(':').next().unwrap_or("8545").to_string(),
            // Validators of a one-host devnet see relayed connections from loopback.
            "--p2p-egress-ip".into(),
            "127.0.0.1".into(),
            "--destroy-on-exit".into(),
        ]
        .into_iter()
        .map(OsString::from)
        .collect();
        eprintln!("starting agent {k} for provider {provider}…");
        let (child, _) = spawn_logos(&agent, &dir.join("agent.log"), Duration::from_secs(30))?;
        network.daemons.push((format!("agent-{k}"), child));
    }
    for i in 0..network.validators.len() {
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
            network.validators[i].rpc.clone().into(),
            "--genesis".into(),
            layout.genesis.clone().into(),
        ];
        eprintln!("starting provisioner {i}…");
        let (child, _) = spawn_logos(
            &command,
            &dir.join("provisioner.log"),
            Duration::from_secs(30),
        )?;
        network.daemons.push((format!("provisioner-{i}"), child));
    }
    Ok(())
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
        "demo: done; inspect with `logos lease status {lease} --rpc {rpc}` and `logos env logs {lease} --keystore {} --from dev --rpc {rpc}`",
        layout.keystore.display()
    );
    Ok(())
}
