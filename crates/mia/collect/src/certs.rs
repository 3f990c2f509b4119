//! The endorsement key's certificate chain as the machine sends it: the EK's certificate (from
//! the TPM's NV, or a file when the manufacturer publishes it online instead, as firmware TPMs'
//! makers do) followed by the CA certificates up to the manufacturer's root, which the
//! operator keeps in a bundle file (PEM or DER, issuer first, root last).
//! `logos_mia::endorsement` states what the chain checks.

use crate::CollectError;
use logos_mia::endorsement::{Chain, CHAIN_MAX_BYTES};
use std::path::Path;
use x509_cert::{
    der::{Decode as _, DecodePem as _, Encode as _},
    Certificate,
};

/// The largest certificate bundle file read, bytes (PEM is a third larger than DER).
pub const BUNDLE_MAX_BYTES: usize = 4 * CHAIN_MAX_BYTES;

/// The DER certificates of a bundle file: PEM `CERTIFICATE` blocks, or one DER certificate.
pub fn read_bundle(path: &Path) -> Result<Vec<Vec<u8>>, CollectError> {
    let bytes = crate::logs::read_optional(path, BUNDLE_MAX_BYTES)?
        .ok_or_else(|| CollectError::Invalid(format!("{}: no such file", path.display())))?;
    let invalid = |what: &str| CollectError::Invalid(format!("{}: {what}", path.display()));
    if !bytes.starts_with(b"-----BEGIN") {
        Certificate::from_der(&bytes).map_err(|_| invalid("not a DER certificate"))?;
        return Ok(vec![bytes]);
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| invalid("not PEM text"))?;
    const END: &str = "-----END CERTIFICATE-----";
    let mut certificates = Vec::new();
    for block in text.split_inclusive(END).filter(|b| b.contains(END)) {
        let certificate = Certificate::from_pem(block.trim_start())
            .map_err(|_| invalid("a malformed PEM certificate"))?;
        certificates.push(certificate.to_der().map_err(|_| invalid("a certificate"))?);
    }
    match certificates.is_empty() {
        true => Err(invalid("no certificate")),
        false => Ok(certificates),
    }
}

/// The chain the chain checks: `ek_certificate` then `authorities`, parsed back to check it
/// is within the bounds before anything is sent.
pub fn chain(ek_certificate: &[u8], authorities: &[Vec<u8>]) -> Result<Vec<u8>, CollectError> {
    let mut chain = ek_certificate.to_vec();
    for authority in authorities {
        chain.extend_from_slice(authority);
    }
    Chain::parse(&chain)
        .map_err(|e| CollectError::Invalid(format!("EK certificate chain: {e}")))?;
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use logos_mia::test_ca::{ek_public, TestCa};
    use x509_cert::der::{pem::LineEnding, EncodePem as _};

    #[test]
    fn pem_and_der_bundles_are_read_and_anything_else_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new(3);
        let pem: String = [&ca.issuer, &ca.root]
            .iter()
            .map(|c| c.to_pem(LineEnding::LF).unwrap())
            .collect();
        let path = dir.path().join("bundle.pem");
        std::fs::write(&path, &pem).unwrap();
        let read = read_bundle(&path).unwrap();
        assert_eq!(
            read,
            vec![ca.issuer.to_der().unwrap(), ca.root.to_der().unwrap()]
        );
        let der_path = dir.path().join("root.der");
        std::fs::write(&der_path, ca.root.to_der().unwrap()).unwrap();
        assert_eq!(
            read_bundle(&der_path).unwrap(),
            vec![ca.root.to_der().unwrap()]
        );
        // The assembled chain is what the chain verifies.
        let ek = ek_public(0xC5, 0);
        let leaf = ca.certify(&ek).to_der().unwrap();
        assert_eq!(chain(&leaf, &read).unwrap(), ca.chain(&ek));

        for (name, bytes) in [
            ("garbage.der", b"not a certificate".to_vec()),
            ("empty.pem", b"-----BEGIN nothing-----\n".to_vec()),
            ("broken.pem", pem.replace("MII", "XXX").into_bytes()),
            ("huge.pem", vec![b'-'; BUNDLE_MAX_BYTES + 1]),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            assert!(read_bundle(&path).is_err(), "{name}");
        }
        assert!(read_bundle(&dir.path().join("absent.pem")).is_err());
        // A chain past the bounds is refused before anything is sent.
        let five = vec![ca.issuer.to_der().unwrap(); 4];
        assert!(chain(&leaf, &five).is_err());
    }
}
