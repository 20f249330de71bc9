//! Client authentication at a node (FATE-Flow 2.x apps, fate-spec §3.4): whether it is on,
//! the admin app a node creates on first start, and `fate app create`.

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use fate_api::ClientAuth;
use fate_store::MetaStore;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `--auth`: FATE's client authentication switch.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum AuthSwitch {
    /// On unless the API listens on a loopback address only.
    #[default]
    Auto,
    /// Every request must be signed with an app id and token.
    On,
    /// No authentication (anyone who reaches the API may use it).
    Off,
}

impl AuthSwitch {
    /// Whether authentication is on for an API listening on `addr`.
    pub fn enabled(self, addr: &std::net::SocketAddr) -> bool {
        match self {
            AuthSwitch::On => true,
            AuthSwitch::Off => false,
            AuthSwitch::Auto => !addr.ip().is_loopback(),
        }
    }
}

/// Where a node writes the credentials of the admin app it creates on first start.
pub fn admin_file(data_dir: &Path) -> PathBuf {
    data_dir.join("admin-app.json")
}

/// The client authentication of a node whose API listens on `addr`: `None` when off. When on
/// and the node has no app yet, creates an `admin` app with the `super_client` role and writes
/// its id and token to [`admin_file`] (readable by the node's user only).
pub async fn client_auth(
    switch: AuthSwitch,
    addr: &std::net::SocketAddr,
    store: &MetaStore,
    data_dir: &Path,
) -> Result<Option<Arc<ClientAuth>>> {
    if !switch.enabled(addr) {
        if !addr.ip().is_loopback() {
            tracing::warn!(%addr, "Client authentication is off on an API reachable from other machines: anyone who reaches it may use this node.");
        }
        return Ok(None);
    }
    if store.apps(None, None).await?.is_empty() {
        let (file, _) = create_app(store, data_dir, "admin", true).await?;
        println!(
            "client authentication is on: the admin app's id and token are in {} \
             (export FATE_APP_ID and FATE_APP_TOKEN, or `flow init --app-id --app-token`)",
            file.display()
        );
    }
    Ok(Some(Arc::new(ClientAuth::new(store.clone()))))
}

/// Creates an app (with `super_client` too when `admin`), writes its credentials to a file
/// only the owner can read, and returns (file, app).
async fn create_app(
    store: &MetaStore,
    data_dir: &Path,
    name: &str,
    admin: bool,
) -> Result<(PathBuf, fate_store::AppRecord)> {
    fate_types::check_name("--name", name).map_err(|e| anyhow::anyhow!("{e}"))?;
    if !store.apps(None, Some(name)).await?.is_empty() {
        bail!("--name: an app named {name} exists already");
    }
    let app = fate_api::auth::new_app(name, fate_store::now_ms());
    store.create_app(&app).await?;
    store
        .grant_role(&app.app_id, fate_api::auth::ROLE_CLIENT)
        .await?;
    if admin {
        store
            .grant_role(&app.app_id, fate_api::auth::ROLE_SUPER_CLIENT)
            .await?;
    }
    let file = if name == "admin" {
        admin_file(data_dir)
    } else {
        data_dir.join(format!("app-{name}.json"))
    };
    let text = serde_json::to_string_pretty(&json!({
        "app_id": app.app_id,
        "app_name": app.app_name,
        "app_token": app.app_token,
    }))?;
    write_private(&file, &text)?;
    Ok((file, app))
}

/// Writes `text` to `file` with mode 0600, replacing it.
fn write_private(file: &Path, text: &str) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let _ = std::fs::remove_file(file);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .with_context(|| format!("cannot write {}", file.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

#[derive(Args)]
pub struct AppCreateArgs {
    /// The node's data directory (its metadata store); run on the node's machine.
    #[arg(long, env = "FATE_HOME", default_value_os_t = crate::default_data_dir())]
    pub data_dir: PathBuf,
    /// The node's metadata database when it is not the SQLite under the data dir (node.yaml
    /// `database.url`).
    #[arg(
        long = "database-url",
        value_name = "URL",
        env = "FATE_DATABASE_URL",
        hide_env_values = true
    )]
    pub database: Option<String>,
    /// The app's name (letters, digits, `_`, `-`, `.`).
    #[arg(long)]
    pub name: String,
    /// Also grant `super_client`: the app may manage apps and permissions.
    #[arg(long)]
    pub super_client: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `fate app create`: an app made offline in the node's store, for the first client of a
/// node with authentication on (or use the admin app the node made on first start).
pub fn create(args: AppCreateArgs) -> Result<()> {
    crate::node::runtime()?.block_on(async move {
        let store = crate::node::open_meta_store(&args.data_dir, args.database.as_deref())
            .await
            .context("cannot open the node's metadata store")?;
        let (file, app) = create_app(&store, &args.data_dir, &args.name, args.super_client).await?;
        store.close().await;
        if args.json {
            println!(
                "{}",
                json!({"app_id": app.app_id, "app_name": app.app_name, "app_token": app.app_token, "file": file})
            );
        } else {
            println!("app {} created (credentials also in {})", app.app_name, file.display());
            println!("export FATE_APP_ID={}", app.app_id);
            println!("export FATE_APP_TOKEN={}", app.app_token);
        }
        Ok(())
    })
}

/// node.yaml `board:`: the board's login. Every field is optional.
#[derive(Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct BoardSettings {
    /// The board user (default `admin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The board password; without one the node generates one at first start and keeps it
    /// in `<data_dir>/board-password` (mode 0600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// How long a login lasts (default 480 minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_minutes: Option<u64>,
}

impl std::fmt::Debug for BoardSettings {
    /// Never the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "BoardSettings {{ user: {:?}, password: {}, session_minutes: {:?} }}",
            self.user,
            if self.password.is_some() {
                "<set>"
            } else {
                "<none>"
            },
            self.session_minutes
        )
    }
}

impl BoardSettings {
    pub fn is_unset(&self) -> bool {
        self.user.is_none() && self.password.is_none() && self.session_minutes.is_none()
    }
}

/// Default length of a board login.
pub const BOARD_SESSION_MINUTES: u64 = 480;

/// Where a node keeps the board password it generated.
pub fn board_password_file(data_dir: &Path) -> PathBuf {
    data_dir.join("board-password")
}

/// The board of a node: its login from `settings`, or with no password configured, the one
/// in [`board_password_file`] (generated and written there, mode 0600, at first start).
/// Returns the board and a sentence telling a user how to log in.
pub fn board(settings: &BoardSettings, data_dir: &Path) -> Result<(Arc<fate_api::Board>, String)> {
    let user = settings.user.clone().unwrap_or_else(|| "admin".into());
    if user.is_empty() {
        bail!("board.user: must not be empty");
    }
    let session_minutes = settings.session_minutes.unwrap_or(BOARD_SESSION_MINUTES);
    if session_minutes == 0 {
        bail!("board.session_minutes: must be at least 1");
    }
    let (password, how) = match &settings.password {
        Some(p) if p.is_empty() => bail!("board.password: must not be empty"),
        Some(p) => (
            p.clone(),
            "the password of node.yaml's board.password".to_string(),
        ),
        None => {
            let file = board_password_file(data_dir);
            let password = match std::fs::read_to_string(&file) {
                Ok(p) if !p.trim().is_empty() => p.trim().to_string(),
                Ok(_) | Err(_) => {
                    let p = fate_api::board::random_password();
                    write_private(&file, &format!("{p}\n"))?;
                    tracing::info!(file = %file.display(), "Board password generated.");
                    p
                }
            };
            (password, format!("the password in {}", file.display()))
        }
    };
    let board = fate_api::Board::new(fate_api::BoardConfig {
        user: user.clone(),
        password,
        session_minutes,
    });
    Ok((Arc::new(board), format!("log in as {user} with {how}")))
}
