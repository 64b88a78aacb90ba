//! The listener's TLS files ([`table::TLS_CERT_FILE`], [`table::TLS_KEY_FILE`],
//! [`table::TLS_CLIENT_CA_FILE`]), from the environment whether or not a configuration file is used: certificates are deployment, mounted
//! from a secret beside whichever configuration. Read here with the rest of the configuration (so a
//! reload sees a rotated certificate), parsed by the native shell, which names the setting and the
//! path when it refuses one.

use std::path::Path;

use super::table;
use super::{ConfigError, EnvFn, ReadFileFn, non_empty, read_error};

const CERT: &str = table::TLS_CERT_FILE.var();
const KEY: &str = table::TLS_KEY_FILE.var();
const CLIENT_CA: &str = table::TLS_CLIENT_CA_FILE.var();

/// TLS on the listener: a certificate chain and its key, and optionally the CA that must have signed
/// every client's certificate (mTLS).
#[derive(Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PemFile,
    pub key: PemFile,
    pub client_ca: Option<PemFile>,
}

/// A PEM file as read, with the variable that named it.
#[derive(Clone, PartialEq, Eq)]
pub struct PemFile {
    pub setting: &'static str,
    pub path: String,
    pub pem: Vec<u8>,
}

// Never the bytes: the key file is a secret.
impl std::fmt::Debug for PemFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}={} ({} bytes)",
            self.setting,
            self.path,
            self.pem.len()
        )
    }
}

impl std::fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsFiles")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("client_ca", &self.client_ca)
            .finish()
    }
}

/// The TLS files the environment names (the listener's, and the probe's, which checks that the
/// listener presents exactly this certificate).
pub fn from_env(
    env: EnvFn<'_>,
    read_file: ReadFileFn<'_>,
) -> Result<Option<TlsFiles>, ConfigError> {
    let read = |setting: &'static str| -> Result<Option<PemFile>, ConfigError> {
        let Some(path) = non_empty(env(setting)) else {
            return Ok(None);
        };
        let pem = read_file(Path::new(&path))
            .map_err(|e| ConfigError::env(setting, read_error(&path, &e)))?;
        Ok(Some(PemFile { setting, path, pem }))
    };
    let (cert, key, client_ca) = (read(CERT)?, read(KEY)?, read(CLIENT_CA)?);
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles {
            cert,
            key,
            client_ca,
        })),
        (None, None) if client_ca.is_some() => Err(ConfigError::env(
            CLIENT_CA,
            format!("needs TLS on the listener: set {CERT} and {KEY} too"),
        )),
        (None, None) => Ok(None),
        (Some(_), None) => Err(ConfigError::env(
            CERT,
            format!("needs {KEY}, the certificate's key"),
        )),
        (None, Some(_)) => Err(ConfigError::env(
            KEY,
            format!("needs {CERT}, the key's certificate"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    fn load(vars: &[(&str, &str)]) -> Result<Option<TlsFiles>, ConfigError> {
        let env = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        };
        let read = |path: &Path| -> io::Result<Vec<u8>> {
            Ok(format!("PEM of {}", path.display()).into_bytes())
        };
        from_env(&env, &read)
    }

    #[test]
    fn no_variables_mean_plain_http() {
        assert_eq!(load(&[]).unwrap(), None);
    }

    #[test]
    fn certificate_and_key_come_together() {
        let files = load(&[(CERT, "/c.pem"), (KEY, "/k.pem"), (CLIENT_CA, "/ca.pem")])
            .unwrap()
            .unwrap();
        assert_eq!(files.cert.pem, b"PEM of /c.pem");
        assert_eq!(files.client_ca.unwrap().setting, CLIENT_CA);
        let alone = load(&[(CERT, "/c.pem")]).unwrap_err().to_string();
        assert!(alone.contains(KEY), "{alone}");
        let alone = load(&[(KEY, "/k.pem")]).unwrap_err().to_string();
        assert!(alone.contains(CERT), "{alone}");
        let ca_only = load(&[(CLIENT_CA, "/ca.pem")]).unwrap_err().to_string();
        assert!(ca_only.starts_with(CLIENT_CA), "{ca_only}");
    }

    /// design/security.md: logs never show a key.
    #[test]
    fn debug_output_never_shows_the_key() {
        let files = load(&[(CERT, "/c.pem"), (KEY, "/k.pem")]).unwrap().unwrap();
        let shown = format!("{files:?}");
        assert!(!shown.contains("PEM of"), "{shown}");
        assert!(shown.contains("/k.pem"), "{shown}");
    }
}
