//! The Terraform provider (`terraform-provider-logos`) driven by the real `terraform` binary
//! against a devnet, installed as `scripts/terraform-dev` says (dev_overrides): `apply` leases
//! the Logos full node and waits until it is Verified, `plan` then shows no change, raising
//! `blocks` extends the lease in place, lowering it or naming a template the catalog lacks fails
//! at plan with the chain untouched, two `replicas` lease a second one in place and one again
//! closes it, a lease closed outside Terraform shows as drift (and is created again), and
//! `destroy` closes it and refunds the escrow; a chain node that waits for its network is
//! applied with `wait_until = "Placed"`. The data sources read the
//! catalog and the prices. Needs root, as the sub0layer tests do, and `terraform` on the PATH.

use logos_client::{tenant::catalog, Client};
use logos_types::{
    balances::Accounts,
    market::{CloseReason, LeaseId, Leases},
};
use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

mod common;

use common::{logos_command, runtime, sub0::Devnet, LOGOS};

/// The provider binary, built beside `logos` by `cargo build --workspace` (as
/// `scripts/test` builds it).
fn provider_directory() -> PathBuf {
    let directory = Path::new(LOGOS).parent().unwrap().to_path_buf();
    assert!(
        directory.join("terraform-provider-logos").is_file(),
        "no terraform-provider-logos beside {LOGOS}: build the workspace (scripts/test does)"
    );
    directory
}

/// A Terraform working directory whose CLI configuration comes from `scripts/terraform-dev`.
struct Workspace {
    dir: tempfile::TempDir,
    cli_config: PathBuf,
}

impl Workspace {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/terraform-dev");
        let output = Command::new(script)
            .arg("--no-build")
            .arg(provider_directory())
            .output()
            .unwrap();
        let printed = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(printed.contains("\"logos/logos\""), "{printed}");
        let cli_config = dir.path().join("terraform.rc");
        std::fs::write(&cli_config, printed).unwrap();
        Self { dir, cli_config }
    }

    /// Writes `main.tf`.
    fn configure(&self, text: &str) {
        std::fs::write(self.dir.path().join("main.tf"), text).unwrap();
    }

    /// Runs `terraform <args>` here.
    fn terraform(&self, args: &[&str]) -> Output {
        Command::new("terraform")
            .args(args)
            .current_dir(self.dir.path())
            .env("TF_CLI_CONFIG_FILE", &self.cli_config)
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_DATA_DIR", self.dir.path().join(".terraform"))
            .env_remove("TF_LOG")
            .output()
            .expect("terraform is on the PATH (see scripts/install-deps)")
    }

    /// `terraform <args>`, which must succeed; its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.terraform(args);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "terraform {args:?}:\n{stdout}\n{stderr}"
        );
        stdout
    }

    /// `terraform plan -detailed-exitcode`: 0 no change, 1 error, 2 changes; and its output.
    fn plan(&self) -> (i32, String) {
        let output = self.terraform(&["plan", "-detailed-exitcode", "-input=false", "-no-color"]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.code().unwrap_or(-1), text)
    }

    fn apply(&self) -> String {
        self.ok(&["apply", "-auto-approve", "-input=false", "-no-color"])
    }

    fn outputs(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["output", "-json"])).unwrap()
    }
}

/// The configuration of one lease of `template` for `blocks` blocks on `devnet`.
fn main_tf(devnet: &Devnet, template: &str, blocks: u64) -> String {
    main_tf_with(devnet, template, blocks, "")
}

/// [`main_tf`] with `settings` added to the resource.
fn main_tf_with(devnet: &Devnet, template: &str, blocks: u64, settings: &str) -> String {
    let dir = devnet.dir.display();
    format!(
        r#"
terraform {{
  required_providers {{
    logos = {{ source = "logos/logos" }}
  }}
}}

provider "logos" {{
  rpc      = "{rpc}"
  keystore = "{dir}/keys"
  key      = "dev"
  genesis  = "{dir}/genesis.toml"
}}

data "logos_catalog" "all" {{}}
data "logos_prices" "now" {{}}

resource "logos_lease" "node" {{
  template = "{template}"
  blocks   = {blocks}
  {settings}
}}

output "id" {{ value = logos_lease.node.id }}
output "lease_ids" {{ value = logos_lease.node.lease_ids }}
output "endpoints" {{ value = logos_lease.node.endpoints }}
output "ports" {{ value = logos_lease.node.ports }}
output "status" {{ value = logos_lease.node.status }}
output "endpoint" {{ value = logos_lease.node.endpoint }}
output "full_node_price" {{
  value = [for t in data.logos_catalog.all.templates : t.price_per_block if t.name == "Logos full node"][0]
}}
output "hosted_price" {{ value = data.logos_prices.now.prices["compute-hosted"] }}
"#,
        rpc = devnet.rpc,
    )
}

fn lease_id(outputs: &serde_json::Value) -> LeaseId {
    LeaseId(outputs["id"]["value"].as_str().unwrap().parse().unwrap())
}

#[test]
fn terraform_applies_extends_sees_drift_and_destroys_a_lease() {
    let mut devnet = Devnet::start("terraform", 29_100, 61, &[]);
    let rt = runtime();
    let client = rt.block_on(Client::connect(&devnet.rpc)).unwrap();
    let read = |id: LeaseId| rt.block_on(client.map::<Leases>(&id)).unwrap().0.unwrap();
    let tenant = devnet.wallet("dev").address();
    let workspace = Workspace::new();

    // apply: one lease of the Logos full node, Verified, with its endpoint.
    workspace.configure(&main_tf(&devnet, "Logos full node", 1_000));
    workspace.apply();
    let outputs = workspace.outputs();
    assert_eq!(outputs["status"]["value"], "Verified", "{outputs}");
    assert!(
        outputs["endpoint"]["value"].as_str().unwrap().contains(':'),
        "{outputs}"
    );
    let first = lease_id(&outputs);
    let record = read(first);
    // The state's escrow is the chain's at its height (billing lowers it every verified block:
    // an output of it changes at each refresh, the lease does not).
    let state: serde_json::Value = serde_json::from_str(&workspace.ok(&["show", "-json"])).unwrap();
    let resources = &state["values"]["root_module"]["resources"];
    let lease = resources
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "logos_lease");
    let escrow: u128 = lease.unwrap()["values"]["escrow"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        escrow >= record.escrow.0 && escrow <= 1_000 * record.rate.0,
        "{escrow}"
    );
    assert_eq!((record.tenant, record.closed), (tenant, None));
    // The data sources show what the chain holds.
    let entries = rt.block_on(catalog(&client)).unwrap();
    let price = entries[0].price_per_block.unwrap().0;
    assert_eq!(outputs["full_node_price"]["value"], price.to_string());
    assert_eq!(record.rate.0, price);
    assert!(
        outputs["hosted_price"]["value"]
            .as_str()
            .unwrap()
            .parse::<u128>()
            .unwrap()
            > 0
    );

    // plan: nothing to do.
    let (code, text) = workspace.plan();
    assert_eq!(code, 0, "{text}");

    // More blocks: extended in place, the same lease, 500 blocks more escrow.
    workspace.configure(&main_tf(&devnet, "Logos full node", 1_500));
    let (code, text) = workspace.plan();
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("updated in-place"), "{text}");
    let before = read(first);
    workspace.apply();
    assert_eq!(lease_id(&workspace.outputs()), first);
    let after = read(first);
    let billed = (after.blocks_billed - before.blocks_billed) as u128;
    assert_eq!(
        after.escrow.0 + billed * after.rate.0,
        before.escrow.0 + 500 * after.rate.0
    );

    // Two replicas: a second lease of the template in place, bought for as many blocks and
    // Verified; then back to one: the newest is closed by its tenant, the first kept.
    let replicated = |count: u32| {
        let settings = format!("replicas = {count}");
        workspace.configure(&main_tf_with(&devnet, "Logos full node", 1_500, &settings));
        let (code, text) = workspace.plan();
        assert_eq!(code, 2, "{text}");
        assert!(text.contains("updated in-place"), "{text}");
        assert!(!text.contains("must be replaced"), "{text}");
        workspace.apply();
        let outputs = workspace.outputs();
        assert_eq!(lease_id(&outputs), first);
        assert_eq!(outputs["status"]["value"], "Verified", "{outputs}");
        let ids: Vec<LeaseId> = outputs["lease_ids"]["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| LeaseId(id.as_str().unwrap().parse().unwrap()))
            .collect();
        let endpoints = outputs["endpoints"]["value"].as_array().unwrap().clone();
        assert_eq!(
            (ids.len(), endpoints.len()),
            (count as usize, count as usize)
        );
        assert_eq!(ids[0], first);
        ids
    };
    let ids = replicated(2);
    let replica = read(ids[1]);
    assert_eq!((replica.tenant, replica.closed), (tenant, None));
    assert_eq!(replica.template, read(first).template);
    let bought = replica.blocks_billed as u128 + replica.escrow.0 / replica.rate.0;
    assert_eq!(bought, 1_500);
    let (code, text) = workspace.plan();
    assert_eq!(code, 0, "{text}");
    assert_eq!(replicated(1), [first]);
    assert!(
        matches!(read(ids[1]).closed, Some((_, CloseReason::ClosedByTenant))),
        "{:?}",
        read(ids[1])
    );
    assert_eq!(read(first).closed, None);

    // Fewer blocks, or a template the catalog lacks: refused at plan, the chain untouched.
    let after = read(first);
    let (escrow, billed) = (after.escrow.0, after.blocks_billed);
    workspace.configure(&main_tf(&devnet, "Logos full node", 100));
    let (code, text) = workspace.plan();
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("blocks can only grow"), "{text}");
    workspace.configure(&main_tf(&devnet, "No such node", 1_500));
    let (code, text) = workspace.plan();
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("no template named") && text.contains("Logos full node"),
        "{text}"
    );
    // Another template replaces the lease (planned only here).
    workspace.configure(&main_tf(&devnet, "Static web server", 1_500));
    let (code, text) = workspace.plan();
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("must be replaced"), "{text}");
    let unchanged = read(first);
    assert_eq!(
        unchanged.escrow.0 + (unchanged.blocks_billed - billed) as u128 * unchanged.rate.0,
        escrow
    );
    assert_eq!(unchanged.closed, None);

    // Closed outside Terraform: the plan shows the drift and creates it again.
    workspace.configure(&main_tf(&devnet, "Logos full node", 1_500));
    let closed = logos_command()
        .args(["lease", "close", &first.to_string(), "--json"])
        .args(["--rpc", &devnet.rpc, "--from", "dev"])
        .env("LOGOS_KEYSTORE", devnet.dir.join("keys"))
        .output()
        .unwrap();
    assert!(
        closed.status.success(),
        "{}",
        String::from_utf8_lossy(&closed.stderr)
    );
    let (code, text) = workspace.plan();
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("has been deleted"), "{text}");
    assert!(text.contains("will be created"), "{text}");
    workspace.apply();
    let second = lease_id(&workspace.outputs());
    assert_ne!(second, first);
    assert_eq!(read(second).closed, None);

    // import adopts an open lease of the key (and refuses what is not a lease id).
    workspace.ok(&["state", "rm", "logos_lease.node"]);
    let refused = workspace.terraform(&["import", "-no-color", "logos_lease.node", "x; y"]);
    assert!(!refused.status.success());
    let refused = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(refused.contains("a lease id is a number"), "{refused}");
    // Another tenant's lease (provider-1's key leases one) is refused before anything is paid.
    let foreign = logos_command()
        .args([
            "lease",
            "create",
            "--template",
            "1",
            "--blocks",
            "10",
            "--json",
        ])
        .args(["--rpc", &devnet.rpc, "--from", "provider-1"])
        .env("LOGOS_KEYSTORE", devnet.dir.join("keys"))
        .output()
        .unwrap();
    assert!(
        foreign.status.success(),
        "{}",
        String::from_utf8_lossy(&foreign.stderr)
    );
    let foreign: serde_json::Value = serde_json::from_slice(&foreign.stdout).unwrap();
    let foreign = foreign["lease"].as_u64().unwrap().to_string();
    let refused = workspace.terraform(&["import", "-no-color", "logos_lease.node", &foreign]);
    assert!(!refused.status.success());
    let refused = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(refused.contains("belongs to"), "{refused}");
    workspace.ok(&[
        "import",
        "-no-color",
        "logos_lease.node",
        &second.to_string(),
    ]);
    assert_eq!(lease_id(&workspace.outputs()), second);
    let (code, text) = workspace.plan();
    assert_ne!(code, 1, "{text}");
    assert!(!text.contains("must be replaced"), "{text}");

    // destroy: closed by its tenant, the unspent escrow back in the tenant's balance.
    let balance = |rt: &tokio::runtime::Runtime| {
        let (account, _) = rt.block_on(client.map::<Accounts>(&tenant)).unwrap();
        account.unwrap_or_default().balance.0
    };
    let (held, balance_before) = (read(second).escrow.0, balance(&rt));
    workspace.ok(&["destroy", "-auto-approve", "-input=false", "-no-color"]);
    let record = read(second);
    assert!(
        matches!(record.closed, Some((_, CloseReason::ClosedByTenant))),
        "{record:?}"
    );
    // Refunded: what the escrow held less what was billed after the read, less fees.
    let gained = balance(&rt).saturating_sub(balance_before);
    assert!(gained > held / 2, "gained {gained} of {held}");
    assert_eq!(workspace.ok(&["state", "list"]).trim(), "");

    // A node that syncs only once its network dials it: apply waits until it is placed (its
    // ports known, the p2p port among them), not until it is Verified (which this one, with no
    // network, never is: the terms give it time); an unknown wait is refused at plan.
    devnet.give_leases_time(24_000);
    let litecoin = |settings: &str| {
        workspace.configure(&main_tf_with(
            &devnet,
            "Litecoin regtest node",
            100,
            settings,
        ));
        workspace.plan()
    };
    let (code, text) = litecoin(r#"wait_until = "Soon""#);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("wait_until must be"), "{text}");
    litecoin(r#"wait_until = "Placed""#);
    workspace.apply();
    let outputs = workspace.outputs();
    let endpoint = outputs["endpoints"]["value"][0]
        .as_str()
        .unwrap()
        .to_string();
    let p2p = outputs["ports"]["value"]["9333"].as_str().unwrap();
    let host = endpoint.rsplit_once(':').unwrap().0;
    assert!(
        p2p.starts_with(&format!("{host}:")) && p2p != endpoint,
        "{outputs}"
    );
    assert_eq!(outputs["ports"]["value"]["8080"], endpoint, "{outputs}");
    let placed = lease_id(&outputs);
    assert_eq!(read(placed).closed, None);
    // Changing only what apply waits for changes nothing on chain, and applies cleanly.
    let (code, text) = litecoin(r#"wait_until = "Verified""#);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("updated in-place"), "{text}");
    workspace.apply();
    assert_eq!(lease_id(&workspace.outputs()), placed);
    assert_eq!(read(placed).closed, None);
    workspace.ok(&["destroy", "-auto-approve", "-input=false", "-no-color"]);
    let record = read(placed);
    assert!(
        matches!(record.closed, Some((_, CloseReason::ClosedByTenant))),
        "{record:?}"
    );
    devnet.stop();
}

#[test]
fn the_provider_refuses_bad_settings_before_touching_a_chain() {
    let workspace = Workspace::new();
    let config = |settings: &str| {
        format!(
            r#"
terraform {{
  required_providers {{
    logos = {{ source = "logos/logos" }}
  }}
}}
provider "logos" {{
{settings}
}}
data "logos_prices" "now" {{}}
"#
        )
    };
    for (settings, reason) in [
        (
            r#"rpc = "file:///etc/passwd""#,
            "not an http:// or https:// URL",
        ),
        (r#"key = "../../etc/shadow""#, "is not a key name"),
        (
            r#"rpc = "http://127.0.0.1:9""#,
            "cannot reach the Logos chain",
        ),
    ] {
        workspace.configure(&config(settings));
        let (code, text) = workspace.plan();
        assert_eq!(code, 1, "{settings}: {text}");
        assert!(text.contains(reason), "{settings}: {text}");
    }
}
