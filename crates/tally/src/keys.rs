//! Development keys and tokens: `serve` keeps an HS256 secret in its data folder, and
//! `tally token` signs tokens with it.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use tally_gateway::{AuthConfig, Claims, Role};

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
    let roles = match role {
        TokenRole::Operator => vec![Role::Operator],
        TokenRole::ResourceProvider => vec![Role::ResourceProvider],
        TokenRole::DelegatedProvider => vec![Role::DelegatedProvider],
        TokenRole::Tenant => vec![],
    };
    if role == TokenRole::Tenant && tenant_id.is_none() {
        bail!("a tenant token needs --tenant-id");
    }
    if role == TokenRole::DelegatedProvider && provider_subscription_id.is_none() {
        bail!("a delegated-provider token needs --provider-subscription-id");
    }
    for id in tenant_id.iter().chain(&provider_subscription_id) {
        if tally_core::parse_guid(id).is_none() {
            bail!("{id:?} is not a GUID");
        }
    }
    let now = chrono::Utc::now().timestamp();
    Ok(Claims {
        iss: tally_gateway::auth::DEVELOPMENT_ISSUER.into(),
        aud: tally_gateway::auth::DEVELOPMENT_AUDIENCE.into(),
        sub: subject.to_string(),
        exp: now + hours * 3_600,
        nbf: Some(now - 60),
        iat: Some(now),
        tid: tenant_id,
        roles: roles.iter().map(|r| r.name().to_string()).collect(),
        provider_subscription_id,
    })
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
