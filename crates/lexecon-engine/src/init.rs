//! `lexecon init`: a fresh data directory with configuration, keys, a starter policy, a
//! migrated database and an admin API key.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lexecon_auth::{NewApiKey, Role};
use lexecon_capability::NodeKey;
use lexecon_core::Clock;

use crate::config::{Config, Sources, default_config_file};
use crate::layout::{DataDir, NODE_KEY_NAME};
use crate::{Caller, Engine, EngineError};

/// What `init` created.
#[derive(Debug, Clone)]
pub struct Initialised {
    /// The data directory.
    pub data_dir: PathBuf,
    /// The admin token file.
    pub admin_token_file: PathBuf,
    /// The node's key id.
    pub key_id: String,
    /// Where an earlier directory's files were moved (with `--force`).
    pub backup: Option<PathBuf>,
    /// Whether an RSA-4096 co-signing key was made.
    pub rsa: bool,
}

/// Options of `lexecon init`.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The data directory.
    pub data_dir: PathBuf,
    /// The node id written to the configuration.
    pub node_id: String,
    /// Also make an RSA-4096 key that co-signs checkpoints.
    pub rsa: bool,
    /// Replace an initialised directory (its files are moved to a backup folder first).
    pub force: bool,
}

/// Refusals and failures of `init`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// The directory is already initialised.
    #[error(
        "{0} is already initialised; pass --force to replace it (its current files are moved to a backup folder inside it)"
    )]
    AlreadyInitialised(PathBuf),
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Something else failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> InitError + '_ {
    move |source| InitError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to a new file readable only by its owner (0600 from the start: the
/// file never exists with wider permissions).
pub fn write_secret_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn backup_existing(dir: &DataDir, clock: &dyn Clock) -> Result<Option<PathBuf>, InitError> {
    let present: Vec<PathBuf> = dir
        .managed()
        .into_iter()
        .filter(|path| path.exists())
        .collect();
    if present.is_empty() {
        return Ok(None);
    }
    let backup = dir
        .root()
        .join(format!("backup-{}", clock.now().unix_secs()));
    fs::create_dir_all(&backup).map_err(io(&backup))?;
    for path in present {
        // Every managed path is a direct child of the directory, so it has a name.
        let Some(name) = path.file_name() else {
            continue;
        };
        fs::rename(&path, backup.join(name)).map_err(io(&path))?;
    }
    Ok(Some(backup))
}

/// Initialises `options.data_dir`.
pub async fn init(options: &InitOptions, clock: Arc<dyn Clock>) -> Result<Initialised, InitError> {
    let layout = DataDir::new(&options.data_dir);
    let dir = &options.data_dir;
    if layout.is_initialised() && !options.force {
        return Err(InitError::AlreadyInitialised(dir.clone()));
    }
    fs::create_dir_all(dir).map_err(io(dir))?;
    let backup = if options.force {
        backup_existing(&layout, clock.as_ref())?
    } else {
        None
    };
    let keys = layout.keys_dir();
    fs::create_dir_all(&keys).map_err(io(&keys))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&keys, fs::Permissions::from_mode(0o700)).map_err(io(&keys))?;
    }

    let key = NodeKey::generate(&mut rand::rngs::OsRng);
    key.write_files(&keys, NODE_KEY_NAME)
        .map_err(|e| EngineError::Keys(e.to_string()))?;
    if options.rsa {
        write_rsa_key(&layout)?;
    }
    let policy = layout.policy_file();
    fs::write(&policy, lexecon_policy::STARTER_POLICY).map_err(io(&policy))?;

    // The configuration as the server will see it (defaults and the environment, so a
    // `LEXECON_DATABASE__URL` is honoured): the admin key goes to the database the
    // server will use, through the engine, so its creation is ledgered like any other.
    let mut config = Config::load(&Sources {
        data_dir: Some(dir.clone()),
        config_file: None,
    })
    .map_err(EngineError::from)?;
    options.node_id.clone_into(&mut config.node.id);
    // The master key for secrets at rest, 0600 like the node key, unless the key comes
    // from LEXECON_MASTER_KEY or an existing configured file.
    let master_key = config.master_key_file();
    let env_key = std::env::var(crate::secrets::MASTER_KEY_ENV).is_ok_and(|v| !v.trim().is_empty());
    if !env_key && !master_key.exists() {
        crate::secrets::create_key_file(&master_key)?;
    }
    let engine = Engine::open_local(config, clock).await?;
    let created = engine
        .create_api_key(&Caller::local(), NewApiKey::new("admin", Role::Admin))
        .await;
    let closed = engine.shutdown().await;
    let created = created?;
    closed?;
    let token_file = layout.admin_token();
    write_secret_file(
        &token_file,
        format!("{}\n", created.api_key.expose()).as_bytes(),
    )
    .map_err(io(&token_file))?;

    // The configuration goes last: its presence marks the directory initialised, so an
    // init that failed half-way can simply be run again.
    let config = layout.config_file();
    fs::write(&config, default_config_file(&options.node_id)).map_err(io(&config))?;
    Ok(Initialised {
        data_dir: dir.clone(),
        admin_token_file: token_file,
        key_id: key.key_id().to_owned(),
        backup,
        rsa: options.rsa,
    })
}

fn write_rsa_key(layout: &DataDir) -> Result<(), InitError> {
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 4096)
        .map_err(|e| EngineError::Keys(format!("generating the RSA-4096 key: {e}")))?;
    let pem = private
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| EngineError::Keys(e.to_string()))?;
    let path = layout.rsa_key();
    write_secret_file(&path, pem.as_bytes()).map_err(io(&path))?;
    let public = private
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| EngineError::Keys(e.to_string()))?;
    let path = layout.rsa_pub();
    fs::write(&path, public).map_err(io(&path))?;
    Ok(())
}
