//! The options every subcommand shares: the scheme and the secrets.

use clap::{Args, ValueEnum};
use webhook_guard::{Scheme, Secret, SecretSet};

use crate::Failure;

/// How the `--secret` text turns into key bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SecretEncoding {
    /// The scheme's own convention: `standard` decodes `whsec_<base64>`,
    /// every other scheme uses the text's bytes.
    Scheme,
    /// The text's bytes as they are.
    Raw,
    /// Base64, with or without a `whsec_` prefix.
    Base64,
    /// Hex digits.
    Hex,
}

/// Scheme and secrets.
#[derive(Debug, Clone, Args)]
pub(crate) struct KeyArgs {
    /// The shared secret. Repeat it to accept several during a rotation
    /// (a sender signs with every one the scheme can carry).
    #[arg(
        long = "secret",
        short = 's',
        env = "WEBHOOK_SECRET",
        hide_env_values = true,
        required = true,
        value_name = "SECRET"
    )]
    pub(crate) secrets: Vec<String>,

    /// The wire format: native, native-body-only, standard (alias svix),
    /// github, stripe, slack or shopify.
    #[arg(long, default_value = "native", value_parser = parse_scheme)]
    pub(crate) scheme: Scheme,

    /// How to read the secret text.
    #[arg(long, value_enum, default_value_t = SecretEncoding::Scheme)]
    pub(crate) secret_encoding: SecretEncoding,
}

fn parse_scheme(name: &str) -> Result<Scheme, String> {
    Scheme::from_name(name).map_err(|e| e.to_string())
}

impl KeyArgs {
    /// The secrets as a set, read the way `--secret-encoding` says.
    pub(crate) fn secret_set(&self) -> Result<SecretSet, Failure> {
        let mut secrets = Vec::with_capacity(self.secrets.len());
        for (index, text) in self.secrets.iter().enumerate() {
            let secret = match self.secret_encoding {
                SecretEncoding::Scheme => self.scheme.parse_secret(text).map_err(|e| e.to_string()),
                // Bytes, so that no scheme reads the text its own way.
                SecretEncoding::Raw => Ok(Secret::new(text.as_bytes())),
                SecretEncoding::Base64 => Secret::from_whsec(text).map_err(|e| e.to_string()),
                SecretEncoding::Hex => hex::decode(text.trim())
                    .map(Secret::new)
                    .map_err(|_| "the secret is not an even number of hex digits".to_owned()),
            }
            .map_err(|why| Failure::usage(format!("--secret #{}: {why}", index + 1)))?;
            secrets.push(secret);
        }
        SecretSet::new(secrets).map_err(|e| Failure::usage(e.to_string()))
    }
}
