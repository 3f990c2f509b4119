//! The built `terraform-provider-logos` binary as Terraform starts it: it prints the go-plugin
//! handshake (core protocol 1, plugin protocol 6, gRPC over TCP) naming a loopback address
//! only, and serves there until stopped, with Terraform's client certificate (mutual TLS) and
//! without. (Building this test also builds the binary for the Terraform end-to-end test in
//! `crates/cli/tests/terraform.rs`.)

use std::{
    io::{BufRead, BufReader},
    net::{SocketAddr, TcpStream},
    process::{Command, Stdio},
    time::Duration,
};

/// Starts the provider (with `client_cert` as Terraform's, if any); its handshake line and
/// whether its address accepted a connection.
fn handshake(client_cert: Option<&str>) -> (String, Option<SocketAddr>, bool) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_terraform-provider-logos"));
    match client_cert {
        Some(cert) => command.env("PLUGIN_CLIENT_CERT", cert),
        None => command.env_remove("PLUGIN_CLIENT_CERT"),
    };
    let mut provider = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let read = BufReader::new(provider.stdout.take().unwrap()).read_line(&mut line);
    let address = line
        .trim_end()
        .split('|')
        .nth(3)
        .and_then(|address| address.parse::<SocketAddr>().ok());
    let reachable = address.is_some_and(|address| {
        TcpStream::connect_timeout(&address, Duration::from_secs(5)).is_ok()
    });
    let _ = provider.kill();
    let _ = provider.wait();
    read.unwrap();
    (line.trim_end().to_string(), address, reachable)
}

/// A self-signed certificate as Terraform's client certificate is (PEM).
fn client_certificate() -> String {
    let certified = rcgen::generate_simple_self_signed(["localhost".to_string()]).unwrap();
    certified.cert.pem()
}

#[test]
fn the_provider_announces_protocol_6_on_loopback_and_serves_there() {
    for cert in [None, Some(client_certificate())] {
        let (line, address, reachable) = handshake(cert.as_deref());
        let fields: Vec<&str> = line.split('|').collect();
        assert_eq!(fields[..3], ["1", "6", "tcp"], "{line}");
        assert_eq!(fields.get(4), Some(&"grpc"), "{line}");
        let address = address.unwrap_or_else(|| panic!("no address in {line:?}"));
        assert!(address.ip().is_loopback(), "{line}");
        assert!(reachable, "{line}");
        // With mutual TLS, the server's certificate follows for Terraform to pin.
        assert_eq!(
            cert.is_some(),
            fields.get(5).is_some_and(|c| !c.is_empty()),
            "{line}"
        );
    }
}
