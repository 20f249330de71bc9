//! Apps, their roles, and site permissions: what FATE-Flow 2.x keeps for client
//! authentication and permission checks (fate-spec §3.4 `/app/*`, `/permission/*`).
//!
//! The store holds the facts; the API decides what they allow. Tokens are secrets: they are
//! only read back by [`MetaStore::app`] for verifying a signature and by the API that created
//! them.

use crate::error::{Result, StoreError};
use crate::rows::{MAX_ID_CHARS, MAX_LONG_CHARS, Text, check_key};
use crate::{Dialect, MetaStore, conflict_on_unique, is_unique_violation, with_pool};

/// Longest role name (VARCHAR(32)).
const MAX_ROLE_CHARS: usize = 32;
/// Longest site permission value, e.g. `dataset` `namespace|name` (VARCHAR(300)).
const MAX_PERMISSION_CHARS: usize = 300;

/// One app that may call the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppRecord {
    pub app_id: String,
    pub app_name: String,
    /// The shared secret the app signs requests with.
    pub app_token: String,
    /// FATE's app type: `client` (a user or tool) here; `site`/`partner` are FATE's site apps.
    pub app_type: String,
    pub create_time: i64,
}

/// One site permission: `party_id` may use `value` of kind `kind` (`component` or `dataset`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SitePermission {
    pub party_id: String,
    pub kind: String,
    pub value: String,
}

type AppRow = (Text, Text, Text, Text, i64);

fn app_record((app_id, app_name, app_token, app_type, create_time): AppRow) -> AppRecord {
    AppRecord {
        app_id: app_id.0,
        app_name: app_name.0,
        app_token: app_token.0,
        app_type: app_type.0,
        create_time,
    }
}

const APP_COLUMNS: &str = "f_app_id, f_app_name, f_app_token, f_app_type, f_create_time";

impl MetaStore {
    /// Stores a new app; an existing app id or name is a [`StoreError::Conflict`].
    pub async fn create_app(&self, app: &AppRecord) -> Result<()> {
        with_pool!(self, pool, DB => {
            check_key("app_id", &app.app_id, MAX_ID_CHARS)?;
            check_key("app_name", &app.app_name, MAX_LONG_CHARS)?;
            check_key("app_token", &app.app_token, MAX_ID_CHARS)?;
            check_key("app_type", &app.app_type, MAX_ROLE_CHARS)?;
            sqlx::query(&DB::sql(&format!(
                "INSERT INTO t_app_info ({APP_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
            )))
            .bind(&app.app_id)
            .bind(&app.app_name)
            .bind(&app.app_token)
            .bind(&app.app_type)
            .bind(app.create_time)
            .execute(pool)
            .await
            .map_err(|e| conflict_on_unique(e, "app", || app.app_name.clone()))?;
            Ok(())
        })
    }

    /// One app by id.
    pub async fn app(&self, app_id: &str) -> Result<Option<AppRecord>> {
        with_pool!(self, pool, DB => {
            let row: Option<AppRow> = sqlx::query_as(&DB::sql(&format!(
                "SELECT {APP_COLUMNS} FROM t_app_info WHERE f_app_id = ?"
            )))
            .bind(app_id)
            .fetch_optional(pool)
            .await?;
            Ok(row.map(app_record))
        })
    }

    /// Apps matching an optional id and an optional name, oldest first.
    pub async fn apps(
        &self,
        app_id: Option<&str>,
        app_name: Option<&str>,
    ) -> Result<Vec<AppRecord>> {
        with_pool!(self, pool, DB => {
            let rows: Vec<AppRow> = sqlx::query_as(&DB::sql(&format!(
                "SELECT {APP_COLUMNS} FROM t_app_info WHERE (? IS NULL OR f_app_id = ?) \
                 AND (? IS NULL OR f_app_name = ?) ORDER BY f_create_time, f_app_id"
            )))
            .bind(app_id)
            .bind(app_id)
            .bind(app_name)
            .bind(app_name)
            .fetch_all(pool)
            .await?;
            Ok(rows.into_iter().map(app_record).collect())
        })
    }

    /// Removes an app and its roles; false if there was none.
    pub async fn delete_app(&self, app_id: &str) -> Result<bool> {
        with_pool!(self, pool, DB => {
            let mut tx = pool.begin().await?;
            sqlx::query(&DB::sql("DELETE FROM t_app_role WHERE f_app_id = ?"))
                .bind(app_id)
                .execute(&mut *tx)
                .await?;
            let n = sqlx::query(&DB::sql("DELETE FROM t_app_info WHERE f_app_id = ?"))
                .bind(app_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok(n > 0)
        })
    }

    /// Grants `role` to an existing app (granting it twice changes nothing).
    pub async fn grant_role(&self, app_id: &str, role: &str) -> Result<()> {
        with_pool!(self, pool, DB => {
            check_key("role", role, MAX_ROLE_CHARS)?;
            if self.app(app_id).await?.is_none() {
                return Err(StoreError::invalid("app_id", format!("no app {app_id}")));
            }
            // A row already there is the grant: insert and take its unique violation as done
            // (portable, and race-free between two nodes granting at once).
            let inserted =
                sqlx::query(&DB::sql("INSERT INTO t_app_role (f_app_id, f_role) VALUES (?, ?)"))
                    .bind(app_id)
                    .bind(role)
                    .execute(pool)
                    .await;
            match inserted {
                Err(e) if !is_unique_violation(&e) => Err(e.into()),
                _ => Ok(()),
            }
        })
    }

    /// Takes `role` from an app; false if it did not have it.
    pub async fn revoke_role(&self, app_id: &str, role: &str) -> Result<bool> {
        with_pool!(self, pool, DB => {
            let n = sqlx::query(&DB::sql("DELETE FROM t_app_role WHERE f_app_id = ? AND f_role = ?"))
                .bind(app_id)
                .bind(role)
                .execute(pool)
                .await?
                .rows_affected();
            Ok(n > 0)
        })
    }

    /// The roles of an app, sorted.
    pub async fn roles(&self, app_id: &str) -> Result<Vec<String>> {
        with_pool!(self, pool, DB => {
            let rows: Vec<(Text,)> =
                sqlx::query_as(&DB::sql("SELECT f_role FROM t_app_role WHERE f_app_id = ? ORDER BY f_role"))
                    .bind(app_id)
                    .fetch_all(pool)
                    .await?;
            Ok(rows.into_iter().map(|(r,)| r.0).collect())
        })
    }

    /// Grants a site permission (granting it twice changes nothing).
    pub async fn grant_site_permission(&self, p: &SitePermission) -> Result<()> {
        with_pool!(self, pool, DB => {
            check_key("party_id", &p.party_id, MAX_ID_CHARS)?;
            check_key("type", &p.kind, MAX_ROLE_CHARS)?;
            check_key("value", &p.value, MAX_PERMISSION_CHARS)?;
            // As `grant_role`: an existing row is the grant.
            let inserted = sqlx::query(&DB::sql(
                "INSERT INTO t_site_permission (f_party_id, f_type, f_value) VALUES (?, ?, ?)",
            ))
            .bind(&p.party_id)
            .bind(&p.kind)
            .bind(&p.value)
            .execute(pool)
            .await;
            match inserted {
                Err(e) if !is_unique_violation(&e) => Err(e.into()),
                _ => Ok(()),
            }
        })
    }

    /// Deletes site permissions of a party: of one kind, and one value if given. Returns how
    /// many were deleted.
    pub async fn delete_site_permissions(
        &self,
        party_id: &str,
        kind: &str,
        value: Option<&str>,
    ) -> Result<u64> {
        with_pool!(self, pool, DB => {
            let n = sqlx::query(
                &DB::sql("DELETE FROM t_site_permission WHERE f_party_id = ? AND f_type = ? \
                 AND (? IS NULL OR f_value = ?)")
            )
            .bind(party_id)
            .bind(kind)
            .bind(value)
            .bind(value)
            .execute(pool)
            .await?
            .rows_affected();
            Ok(n)
        })
    }

    /// The site permissions of a party, sorted by kind and value.
    pub async fn site_permissions(&self, party_id: &str) -> Result<Vec<SitePermission>> {
        with_pool!(self, pool, DB => {
            let rows: Vec<(Text, Text, Text)> = sqlx::query_as(
                &DB::sql("SELECT f_party_id, f_type, f_value FROM t_site_permission WHERE f_party_id = ? \
                 ORDER BY f_type, f_value")
            )
            .bind(party_id)
            .fetch_all(pool)
            .await?;
            Ok(rows
                .into_iter()
                .map(|(party_id, kind, value)| SitePermission {
                    party_id: party_id.0,
                    kind: kind.0,
                    value: value.0,
                })
                .collect())
        })
    }
}
