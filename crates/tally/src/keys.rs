//! Development keys and tokens: `serve` keeps an HS256 secret in its data folder, and
//! `tally token` signs tokens with it.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use tally_gateway::{AuthConfig, Claims, Grants, Principal};

use crate::cli::{AuthArgs, TokenArgs, TokenRole};

pub(crate) const KEY_FILE: &str = "signing.key";

/// The development secret in `data_dir`, created (owner-readable only) if missing.
pub(crate) fn development_secret(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join(KEY_FILE);
    if !path.exists() {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        let secret = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        write_private(&path, secret.as_bytes())?;
        tracing::info!(path = %path.display(), "created a development signing key");
    }
    read_secret(&path)
}

fn read_secret(path: &Path) -> anyhow::Result<Vec<u8>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the key {}", path.display()))?;
    let secret = text.trim().as_bytes().to_vec();
    if secret.len() < 32 {
        bail!("the key in {} is shorter than 32 bytes", path.display());
    }
    Ok(secret)
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)?;
    Ok(())
}

/// What the gateway accepts: the configured keys, or the development key in `data_dir`.
pub(crate) fn auth_config(args: &AuthArgs, data_dir: &Path) -> anyhow::Result<AuthConfig> {
    let mut shared_secrets = Vec::new();
    for path in &args.secret_files {
        shared_secrets.push(read_secret(path)?);
    }
    let mut public_keys_pem = Vec::new();
    for path in &args.public_key_files {
        public_keys_pem
            .push(std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?);
    }
    if shared_secrets.is_empty() && public_keys_pem.is_empty() {
        shared_secrets.push(development_secret(data_dir)?);
    }
    Ok(AuthConfig {
        issuer: args.issuer.clone(),
        audience: args.audience.clone(),
        shared_secrets,
        public_keys_pem,
    })
}

/// The claims of a development token.
pub(crate) fn claims(
    role: TokenRole,
    tenant_id: Option<String>,
    provider_subscription_id: Option<String>,
    subject: &str,
    hours: i64,
) -> anyhow::Result<Claims> {
    let guid = |text: Option<String>| -> anyhow::Result<Option<uuid::Uuid>> {
        text.map(|id| tally_core::parse_guid(&id).with_context(|| format!("{id:?} is not a GUID")))
            .transpose()
    };
    let tenant = guid(tenant_id)?;
    let provider_subscription = guid(provider_subscription_id)?;
    let principal = match role {
        TokenRole::Operator => Principal::Operator,
        TokenRole::ResourceProvider => Principal::Limited(Grants {
            tenant,
            resource_provider: true,
            delegated_provider: None,
        }),
        TokenRole::DelegatedProvider => Principal::delegated_provider(
            tenant,
            provider_subscription
                .context("a delegated-provider token needs --provider-subscription-id")?,
        ),
        TokenRole::Tenant => Principal::tenant(tenant.context("a tenant token needs --tenant-id")?),
    };
    Ok(Claims::development(
        &principal,
        subject,
        chrono::TimeDelta::hours(hours),
    ))
}

pub(crate) fn token(args: TokenArgs) -> anyhow::Result<()> {
    let secret = match &args.key_file {
        Some(path) => read_secret(path)?,
        None => {
            let path: PathBuf = args.data_dir.join(KEY_FILE);
            if !path.exists() {
                bail!(
                    "no key at {}: start `tally serve` once, or pass --key-file",
                    path.display()
                );
            }
            read_secret(&path)?
        }
    };
    let mut claims = claims(
        args.role,
        args.tenant_id,
        args.provider_subscription_id,
        &args.subject,
        args.hours,
    )?;
    claims.iss = args.issuer;
    claims.aud = args.audience;
    println!("{}", tally_gateway::auth::mint(&secret, &claims)?);
    Ok(())
}

/// An operator token (one hour) signed with the development key in `data_dir`, for commands
/// such as `tally export --data-dir`.
pub(crate) fn operator_token(data_dir: &Path, subject: &str) -> anyhow::Result<String> {
    let path = data_dir.join(KEY_FILE);
    if !path.exists() {
        bail!(
            "no key at {}: start `tally serve` once, or pass --token",
            path.display()
        );
    }
    let claims = claims(TokenRole::Operator, None, None, subject, 1)?;
    Ok(tally_gateway::auth::mint(&read_secret(&path)?, &claims)?)
}
