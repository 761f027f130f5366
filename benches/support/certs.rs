//! Certificates for the local HTTPS push sink: a throw-away CA and a
//! `localhost` leaf signed by it (shared by `benches/fanout.rs` and
//! `benches/scale.rs`; Herold trusts the CA through `HEROLD_PUSH_CA_FILE`).

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

pub struct Files {
    pub ca_pem: PathBuf,
    pub leaf_der: PathBuf,
    pub key_der: PathBuf,
}

pub fn write(dir: &Path) -> Files {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "Herold benchmark CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca, ca_key);

    let leaf_key = KeyPair::generate().expect("leaf key");
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).expect("leaf params");
    leaf.distinguished_name.push(DnType::CommonName, "localhost");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).expect("leaf certificate");

    let files = Files { ca_pem: dir.join("ca.pem"), leaf_der: dir.join("leaf.der"), key_der: dir.join("leaf-key.der") };
    std::fs::write(&files.ca_pem, ca_cert.pem()).expect("write CA");
    std::fs::write(&files.leaf_der, leaf_cert.der()).expect("write leaf");
    std::fs::write(&files.key_der, leaf_key.serialize_der()).expect("write key");
    files
}
