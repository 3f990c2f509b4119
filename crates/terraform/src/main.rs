//! `terraform-provider-logos`: started by Terraform, never by hand (it prints the plugin
//! handshake and serves on loopback until Terraform is done). See the crate docs.

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    terraform_provider_logos::serve().await
}
