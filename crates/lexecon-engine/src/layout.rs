//! Where each file lives inside a data directory (contract §1), named in one place for
//! `init`, the configuration and the CLI.

use std::path::{Path, PathBuf};

use lexecon_capability::NodeKey;

/// The default data directory.
pub const DEFAULT_DATA_DIR: &str = ".lexecon";
/// The file name of the configuration inside the data directory.
pub const CONFIG_FILE: &str = "lexecon.toml";
/// The stem of the node key's files in the keys directory (`node.ed25519`, `.pub`), as
/// the key ring functions of `lexecon_capability` take it.
pub const NODE_KEY_NAME: &str = "node";

const KEYS_DIR: &str = "keys";
const RSA_KEY_FILE: &str = "node.rsa4096.pem";
const RSA_PUB_FILE: &str = "node.rsa4096.pub.pem";
const POLICY_FILE: &str = "policy.toml";
const DATABASE_FILE: &str = "lexecon.db";
const ADMIN_TOKEN_FILE: &str = "admin.token";
const MASTER_KEY_FILE: &str = "master.key";

/// A data directory: the paths of the files `lexecon init` creates in it.
///
/// These are the default places; the configuration may move the policy file
/// (`policy.file`) and the database (`database.url`), so a running node's actual ones are
/// [`crate::Config::policy_file`] and [`crate::Config::database_url`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The data directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `DIR/lexecon.toml`: the configuration; its presence marks the directory initialised.
    pub fn config_file(&self) -> PathBuf {
        self.root.join(CONFIG_FILE)
    }

    /// `DIR/keys`: the node's keys (mode 0700).
    pub fn keys_dir(&self) -> PathBuf {
        self.root.join(KEYS_DIR)
    }

    /// `DIR/keys/node.ed25519`: the node's Ed25519 signing key (mode 0600).
    pub fn node_key(&self) -> PathBuf {
        NodeKey::private_path(&self.keys_dir(), NODE_KEY_NAME)
    }

    /// `DIR/keys/node.ed25519.pub`: its public key.
    pub fn node_pub(&self) -> PathBuf {
        NodeKey::public_path(&self.keys_dir(), NODE_KEY_NAME)
    }

    /// `DIR/keys/node.rsa4096.pem`: the optional RSA-4096 checkpoint co-signing key (mode 0600).
    pub fn rsa_key(&self) -> PathBuf {
        self.keys_dir().join(RSA_KEY_FILE)
    }

    /// `DIR/keys/node.rsa4096.pub.pem`: its public key.
    pub fn rsa_pub(&self) -> PathBuf {
        self.keys_dir().join(RSA_PUB_FILE)
    }

    /// `DIR/policy.toml`: the policy file, unless `policy.file` names another.
    pub fn policy_file(&self) -> PathBuf {
        self.root.join(POLICY_FILE)
    }

    /// `DIR/lexecon.db`: the SQLite database, unless `database.url` names another.
    pub fn database_file(&self) -> PathBuf {
        self.root.join(DATABASE_FILE)
    }

    /// `sqlite://DIR/lexecon.db`: the URL of [`DataDir::database_file`].
    pub fn database_url(&self) -> String {
        format!("sqlite://{}", self.database_file().display())
    }

    /// `DIR/admin.token`: the admin API key the CLI sends by default (mode 0600).
    pub fn admin_token(&self) -> PathBuf {
        self.root.join(ADMIN_TOKEN_FILE)
    }

    /// `DIR/master.key`: the master key that encrypts secrets at rest (mode 0600).
    pub fn master_key(&self) -> PathBuf {
        self.root.join(MASTER_KEY_FILE)
    }

    /// Whether the directory is initialised (it has its configuration file).
    pub fn is_initialised(&self) -> bool {
        self.config_file().exists()
    }

    /// Everything `init` writes directly inside the directory, with SQLite's companion
    /// files: what `init --force` moves aside before it starts again.
    pub fn managed(&self) -> [PathBuf; 8] {
        let database = self.database_file();
        let companion = |suffix: &str| {
            let mut name = database.clone().into_os_string();
            name.push(suffix);
            PathBuf::from(name)
        };
        let (wal, shm) = (companion("-wal"), companion("-shm"));
        [
            self.config_file(),
            self.policy_file(),
            self.admin_token(),
            self.master_key(),
            self.keys_dir(),
            database,
            wal,
            shm,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_the_contract_s() {
        let dir = DataDir::new("/srv/lx");
        let shown = [
            dir.config_file(),
            dir.keys_dir(),
            dir.node_key(),
            dir.node_pub(),
            dir.rsa_key(),
            dir.rsa_pub(),
            dir.policy_file(),
            dir.database_file(),
            dir.admin_token(),
            dir.master_key(),
        ]
        .map(|p| p.display().to_string());
        assert_eq!(
            shown,
            [
                "/srv/lx/lexecon.toml",
                "/srv/lx/keys",
                "/srv/lx/keys/node.ed25519",
                "/srv/lx/keys/node.ed25519.pub",
                "/srv/lx/keys/node.rsa4096.pem",
                "/srv/lx/keys/node.rsa4096.pub.pem",
                "/srv/lx/policy.toml",
                "/srv/lx/lexecon.db",
                "/srv/lx/admin.token",
                "/srv/lx/master.key",
            ]
        );
        assert_eq!(dir.database_url(), "sqlite:///srv/lx/lexecon.db");
        assert!(dir.managed().iter().all(|p| p.parent() == Some(dir.root())));
        assert!(dir.managed().iter().any(|p| p.ends_with("lexecon.db-wal")));
    }
}
