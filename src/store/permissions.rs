//! Per-campaign grants beside the roles: `edit` (change the campaign, its tasks, form,
//! questionnaire and contacts) and `export` (download its files).
//!
//! A campaign without grants keeps the roles' behaviour, so nothing changes for existing
//! installations. Once a campaign has any grant, only admins and the users granted `edit`
//! change it, and only admins and the users granted `export` download its files. `export`
//! also lets a backoffice user download, which the role alone does not.

use super::users::Role;
use super::{now_ms, rfc3339, Result, Store, StoreError};
use serde::{Deserialize, Serialize};
use sqlx::Row;

/// What a request does to a campaign, beyond reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Changes it or its contacts.
    Edit,
    /// Downloads its files.
    Export,
}

impl Access {
    /// The grant's name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Edit => "edit",
            Access::Export => "export",
        }
    }
}

/// One grant as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Grant {
    /// User.
    pub user_id: i64,
    /// Their name.
    pub user: String,
    /// Their role.
    pub role: Role,
    /// May change the campaign.
    pub edit: bool,
    /// May download its files.
    pub export: bool,
    /// Who granted it.
    pub granted_by: String,
    /// When.
    pub granted_at: String,
}

/// A campaign's grants.
#[derive(Debug, Clone, Serialize)]
pub struct Permissions {
    /// Campaign.
    pub campaign_id: i64,
    /// Whether grants decide (true once any exists); false: the roles alone decide.
    pub restricted: bool,
    /// The grants, by user name.
    pub grants: Vec<Grant>,
}

/// One grant in the body of `PUT …/permissions`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantSpec {
    /// The user's name.
    pub user: String,
    /// May change the campaign.
    #[serde(default)]
    pub edit: bool,
    /// May download its files.
    #[serde(default)]
    pub export: bool,
}

/// Body of `PUT …/permissions`: every grant of the campaign (an empty list lifts them).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionsSpec {
    /// The grants.
    pub grants: Vec<GrantSpec>,
}

/// The answer to "may this user do that to this campaign?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Yes (the role still decides in the handler).
    Allowed,
    /// No: the campaign has grants and the user has not this one.
    NotGranted,
    /// No: the role needs a grant for this on any campaign (backoffice export).
    NeedsGrant,
}

impl Store {
    /// A campaign's grants.
    pub async fn permissions(&self, campaign_id: i64) -> Result<Permissions> {
        self.campaign(campaign_id).await?;
        let rows = sqlx::query(
            "SELECT p.user_id, u.name, u.role, p.can_edit, p.can_export, p.granted_by, p.granted_ms \
             FROM campaign_permissions p JOIN users u ON u.id = p.user_id \
             WHERE p.campaign_id = $1 ORDER BY u.name",
        )
        .bind(campaign_id)
        .fetch_all(&self.reader)
        .await?;
        let grants = rows
            .iter()
            .map(|r| {
                Ok(Grant {
                    user_id: r.try_get("user_id")?,
                    user: r.try_get("name")?,
                    role: Role::parse(r.try_get("role")?).unwrap_or(Role::Agent),
                    edit: r.try_get::<i64, _>("can_edit")? != 0,
                    export: r.try_get::<i64, _>("can_export")? != 0,
                    granted_by: r.try_get("granted_by")?,
                    granted_at: rfc3339(r.try_get("granted_ms")?),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Permissions {
            campaign_id,
            restricted: !grants.is_empty(),
            grants,
        })
    }

    /// Replaces a campaign's grants (users named; each at most once) in one transaction.
    pub async fn put_permissions(
        &self,
        campaign_id: i64,
        spec: PermissionsSpec,
        actor: &str,
    ) -> Result<Permissions> {
        self.campaign(campaign_id).await?;
        let mut tx = self.writer.begin().await?;
        let mut ids = Vec::with_capacity(spec.grants.len());
        for (i, g) in spec.grants.iter().enumerate() {
            let field = format!("grants[{i}].user");
            let id: i64 = sqlx::query_scalar("SELECT id FROM users WHERE name = $1")
                .bind(&g.user)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| {
                    StoreError::invalid(&field, format!("no user named {:?}", g.user))
                })?;
            if ids.contains(&id) {
                return Err(StoreError::invalid(
                    field,
                    format!("{:?} is granted twice", g.user),
                ));
            }
            ids.push(id);
        }
        sqlx::query("DELETE FROM campaign_permissions WHERE campaign_id = $1")
            .bind(campaign_id)
            .execute(&mut *tx)
            .await?;
        let now = now_ms();
        for (g, id) in spec.grants.iter().zip(ids) {
            sqlx::query(
                "INSERT INTO campaign_permissions (campaign_id, user_id, can_edit, can_export, \
                 granted_by, granted_ms) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(campaign_id)
            .bind(id)
            .bind(i64::from(g.edit))
            .bind(i64::from(g.export))
            .bind(actor)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.permissions(campaign_id).await
    }

    /// Whether a user of `role` may do `access` to a campaign, as far as grants go (the role's
    /// own check comes after). Admins always may.
    pub async fn may(
        &self,
        campaign_id: i64,
        user_id: i64,
        role: Role,
        access: Access,
    ) -> Result<Verdict> {
        if role == Role::Admin {
            return Ok(Verdict::Allowed);
        }
        let column = match access {
            Access::Edit => "can_edit",
            Access::Export => "can_export",
        };
        let row = sqlx::query(&format!(
            "SELECT COUNT(*) AS grants, \
             COALESCE(SUM(CASE WHEN user_id = $2 AND {column} = 1 THEN 1 ELSE 0 END), 0) AS mine \
             FROM campaign_permissions WHERE campaign_id = $1"
        ))
        .bind(campaign_id)
        .bind(user_id)
        .fetch_one(&self.reader)
        .await?;
        let grants: i64 = row.try_get("grants")?;
        let mine: i64 = row.try_get("mine")?;
        Ok(match (grants, mine) {
            (_, 1..) => Verdict::Allowed,
            _ if role == Role::Backoffice && access == Access::Export => Verdict::NeedsGrant,
            (0, _) => Verdict::Allowed,
            _ => Verdict::NotGranted,
        })
    }
}
