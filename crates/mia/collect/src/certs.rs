//! The endorsement key's certificate chain as the machine sends it: the EK's certificate (from
//! the TPM's NV, or a file when the manufacturer publishes it online instead, as firmware TPMs'
//! makers do) followed by the CA certificates up to the manufacturer's root, which the
//! operator keeps in a bundle file (PEM or DER, issuer first, root last).
//! `logos_mia::endorsement` states what the chain checks.

use crate::CollectError;
use logos_mia::endorsement::{Chain, CHAIN_MAX_BYTES};
use std::path::Path;
use x509_cert::{
    der::{Decode as _, DecodePem as _, Encode as _, Reader as _, SliceReader},
    Certificate,
};

/// The largest certificate bundle file read, bytes (PEM is a third larger than DER).
pub const BUNDLE_MAX_BYTES: usize = 4 * CHAIN_MAX_BYTES;

/// The DER certificates of a bundle file: PEM `CERTIFICATE` blocks, or one DER certificate.
pub fn read_bundle(path: &Path) -> Result<Vec<Vec<u8>>, CollectError> {
    let bytes = crate::logs::read_optional(path, BUNDLE_MAX_BYTES)?
        .ok_or_else(|| CollectError::Invalid(format!("{}: no such file", path.display())))?;
    let invalid = |what: &str| CollectError::Invalid(format!("{}: {what}", path.display()));
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let Some(text) = std::str::from_utf8(&bytes)
        .ok()
        .filter(|text| text.contains(BEGIN))
    else {
        return der_certificates(&bytes).ok_or_else(|| invalid("not DER certificates"));
    };
    // PEM blocks, whatever text surrounds them (`subject=` lines, comments).
    let mut certificates = Vec::new();
    for block in text.split_inclusive(END).filter(|b| b.contains(END)) {
        let start = block
            .find(BEGIN)
            .ok_or_else(|| invalid("an END without a BEGIN"))?;
        let certificate = Certificate::from_pem(&block[start..])
            .map_err(|_| invalid("a malformed PEM certificate"))?;
        certificates.push(certificate.to_der().map_err(|_| invalid("a certificate"))?);
    }
    match certificates.is_empty() {
        true => Err(invalid("no certificate")),
        false => Ok(certificates),
    }
}

/// The concatenated DER certificates of `bytes` (`cat issuer.der root.der`), or `None` when
/// anything else is there too.
fn der_certificates(bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut reader = SliceReader::new(bytes).ok()?;
    let mut certificates = Vec::new();
    let mut start = 0usize;
    while !reader.is_finished() {
        Certificate::decode(&mut reader).ok()?;
        let end = usize::try_from(u32::from(reader.position())).ok()?;
        certificates.push(bytes.get(start..end)?.to_vec());
        start = end;
    }
    (!certificates.is_empty()).then_some(certificates)
}

/// The first DER certificate of `bytes`, without what follows it: TPMs pad their NV
/// certificate (ST33 fills 0xFF up to 1,600 bytes), and some prefix it with the PC Client
/// header `10 01` and a 2-byte length (TCG PC Client Platform TPM Profile §7.3.2).
pub fn first_certificate(bytes: &[u8]) -> Result<Vec<u8>, CollectError> {
    let bytes = match bytes {
        [0x10, 0x01, _, _, rest @ ..] => rest,
        _ => bytes,
    };
    let invalid = || CollectError::Invalid("the EK certificate is not DER X.509".into());
    let mut reader = SliceReader::new(bytes).map_err(|_| invalid())?;
    Certificate::decode(&mut reader).map_err(|_| invalid())?;
    let end = usize::try_from(u32::from(reader.position())).map_err(|_| invalid())?;
    Ok(bytes.get(..end).ok_or_else(invalid)?.to_vec())
}

/// The chain the chain checks: the certificate at the start of `ek_certificate` (see
/// [`first_certificate`]) then `authorities`, parsed back to check it is within the bounds
/// before anything is sent.
pub fn chain(ek_certificate: &[u8], authorities: &[Vec<u8>]) -> Result<Vec<u8>, CollectError> {
    let mut chain = first_certificate(ek_certificate)?;
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
        // `cat issuer.der root.der`: both, in order.
        let both = dir.path().join("both.der");
        let concatenated = [ca.issuer.to_der().unwrap(), ca.root.to_der().unwrap()].concat();
        std::fs::write(&both, concatenated).unwrap();
        assert_eq!(read_bundle(&both).unwrap(), read);
        // The assembled chain is what the chain verifies, from an NV certificate padded or
        // behind the PC Client header too.
        let ek = ek_public(0xC5, 0);
        let leaf = ca.certify(&ek).to_der().unwrap();
        assert_eq!(chain(&leaf, &read).unwrap(), ca.chain(&ek));
        let mut padded = leaf.clone();
        padded.resize(1_600, 0xFF);
        assert_eq!(chain(&padded, &read).unwrap(), ca.chain(&ek));
        let headed = [&[0x10, 0x01, 0x06, 0x40][..], &leaf].concat();
        assert_eq!(chain(&headed, &read).unwrap(), ca.chain(&ek));
        // PEM with text around its blocks.
        let noisy = dir.path().join("noisy.pem");
        std::fs::write(&noisy, format!("subject=CN=x\n# issuer\n{pem}trailing\n")).unwrap();
        assert_eq!(read_bundle(&noisy).unwrap(), read);

        for (name, bytes) in [
            ("garbage.der", b"not a certificate".to_vec()),
            ("empty.pem", b"-----BEGIN nothing-----\n".to_vec()),
            ("padding.der", vec![0xFF; 64]),
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
