//! `terraform-provider-logos`: started by Terraform, never by hand (it prints the plugin
//! handshake and serves on loopback until Terraform is done). See the crate docs.

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    // Built with more than one rustls crypto provider (the workspace's other crates enable
    // aws-lc-rs), rustls cannot pick one for Terraform's mutual TLS: choose ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    terraform_provider_logos::serve().await
}
