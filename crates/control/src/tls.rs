//! The certificates of the `tls` virtuals, loaded on the control side: each `certificate`
//! entry's files are read (regular files, bounded, as config files are), parsed and checked
//! once per configuration change or `reload`, and the resulting [`TlsConfig`] goes to the
//! workers inside every snapshot by `Arc` (health changes reuse it; connections in progress
//! keep the one they started with). Tickets are sealed under a key derived from the
//! configured `cookie-secret` (so directors sharing it resume each other's sessions), or
//! from a random secret of this director when none is configured.

use crate::files;
use detour_config::model::Model;
use detour_tls::{CertSource, TlsConfig};
use std::path::Path;
use std::sync::Arc;

/// Read and check what `model`'s `tls` virtuals need: `Ok(None)` when no virtual is `tls`.
pub fn load(model: &Model, own_secret: &[u8; 32]) -> Result<Option<Arc<TlsConfig>>, String> {
    if !model.virtuals.iter().any(|v| v.tls) {
        return Ok(None);
    }
    let mut sources = Vec::with_capacity(model.settings.certificates.len());
    for c in &model.settings.certificates {
        let read = |p: &str| {
            files::read_config(Path::new(p))
                .map_err(|e| format!("certificate {}: {p}: {e}", c.name))
        };
        sources.push(CertSource {
            name: c.name.clone(),
            cert_pem: read(&c.cert)?,
            key_pem: read(&c.key)?,
        });
    }
    let secret = model.settings.cookie_secret.as_ref().unwrap_or(own_secret);
    TlsConfig::build(&sources, secret)
        .map(|t| Some(Arc::new(t)))
        .map_err(|e| e.to_string())
}
