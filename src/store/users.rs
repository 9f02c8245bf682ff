//! Users, their roles, passwords (argon2) and API tokens (kept as SHA-256 hashes).

use super::agents::AgentChange;
use super::{now_ms, rfc3339, Result, Store, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;
use std::path::{Path, PathBuf};

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything.
    Admin,
    /// Campaign data: campaigns, tasks, imports, exports.
    Operator,
    /// Agents, assignments, monitoring, statistics.
    Supervisor,
    /// Search and edit contacts.
    Backoffice,
    /// Its own calls only.
    Agent,
    /// The SIP proxy in front of several nodes (Kamailio): asks which node serves an agent's
    /// phone (`GET /api/v1/nodes/route`), nothing else.
    Proxy,
}

impl Role {
    /// Every role, for listings and tests.
    pub const ALL: [Role; 6] = [
        Role::Admin,
        Role::Operator,
        Role::Supervisor,
        Role::Backoffice,
        Role::Agent,
        Role::Proxy,
    ];

    /// The name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Supervisor => "supervisor",
            Role::Backoffice => "backoffice",
            Role::Agent => "agent",
            Role::Proxy => "proxy",
        }
    }

    /// The role named `name`.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

/// A user as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    /// Id.
    pub id: i64,
    /// Unique login name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Whether a password is set.
    pub has_password: bool,
    /// Creation time (RFC 3339).
    pub created_at: String,
}

/// A token as listed (the secret itself is shown once, at creation).
#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    /// Id (for revoking).
    pub id: i64,
    /// Owner.
    pub user_id: i64,
    /// Free text naming where it is used.
    pub label: String,
    /// Creation time.
    pub created_at: String,
    /// Revocation time, if revoked.
    pub revoked_at: Option<String>,
}

/// A new token: its secret, shown once.
#[derive(Debug, Clone, Serialize)]
pub struct NewToken {
    /// The token's record.
    #[serde(flatten)]
    pub info: TokenInfo,
    /// The Bearer secret.
    pub token: String,
}

/// What `ensure_admin` did on start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminBootstrap {
    /// Users exist already; nothing done.
    Existing,
    /// An admin was created with the token from `DIALERD_ADMIN_TOKEN`.
    FromEnv,
    /// An admin was created; its token was written to this file.
    Written(PathBuf),
}

fn hash_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh random token: 32 bytes from the OS, hex.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    // The OS random source failing is not something a daemon can work around.
    getrandom::fill(&mut bytes).expect("the OS random source failed");
    hex(&bytes)
}

/// Password hashes computed at once: argon2 takes a core for tens of milliseconds, so more
/// would starve SIP and media of CPU.
static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// Runs argon2 work on the blocking pool, one at a time, off the async worker threads.
async fn hashing<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let _permit = HASHING.acquire().await.map_err(|_| StoreError::Hashing)?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| StoreError::Hashing)
}

/// A hash no password matches, verified for unknown users so that they take as long as
/// known ones.
async fn dummy_hash() -> Result<&'static str> {
    static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DUMMY
        .get_or_try_init(|| async { hashing(|| hash_password(&generate_token())).await? })
        .await
        .map(String::as_str)
}

fn verify_password(stored: &str, password: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(stored)
        .map(|h| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A user name as stored: trimmed, lower case, of letters, digits and `. _ - @` only, so that
/// `Admin`, `admin ` and look-alikes from other scripts cannot sit beside `admin`.
pub fn normalise_name(name: &str) -> Result<String> {
    let name = name.trim().to_lowercase();
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-@".contains(&b));
    if !ok {
        return Err(StoreError::invalid(
            "name",
            "wanted 1 to 64 characters: letters a-z, digits, . _ - @ (case and surrounding \
             spaces are ignored)",
        ));
    }
    Ok(name)
}

fn hash_password(password: &str) -> Result<String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).expect("the OS random source failed");
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| StoreError::invalid("password", e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StoreError::invalid("password", e.to_string()))
}

fn user_of(row: &sqlx::any::AnyRow) -> Result<User> {
    let role: String = row.try_get("role")?;
    Ok(User {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: Role::parse(&role).unwrap_or(Role::Agent),
        has_password: row.try_get::<Option<String>, _>("password_hash")?.is_some(),
        created_at: rfc3339(row.try_get("created_ms")?),
    })
}

fn token_of(row: &sqlx::any::AnyRow) -> Result<TokenInfo> {
    Ok(TokenInfo {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        label: row.try_get("label")?,
        created_at: rfc3339(row.try_get("created_ms")?),
        revoked_at: row.try_get::<Option<i64>, _>("revoked_ms")?.map(rfc3339),
    })
}

const USER_COLUMNS: &str = "id, name, role, password_hash, created_ms";

impl Store {
    /// Creates a user; a name already taken is a conflict.
    pub async fn create_user(
        &self,
        name: &str,
        role: Role,
        password: Option<&str>,
    ) -> Result<User> {
        self.create_user_with(name, role, password, &AgentChange::default())
            .await
    }

    /// Creates a user and, in the same transaction, its agent parts (SIP login, tasks): either
    /// all of it is stored or nothing.
    pub async fn create_user_with(
        &self,
        name: &str,
        role: Role,
        password: Option<&str>,
        agent: &AgentChange,
    ) -> Result<User> {
        let name = normalise_name(name)?;
        let name = name.as_str();
        let hash = match password {
            Some(p) if p.len() < 8 => {
                return Err(StoreError::invalid(
                    "password",
                    "wanted at least 8 characters",
                ))
            }
            Some(p) => {
                let p = p.to_string();
                Some(hashing(move || hash_password(&p)).await??)
            }
            None => None,
        };
        let mut tx = self.writer.begin().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO users (name, role, password_hash, created_ms) VALUES ($1, $2, $3, $4) \
             RETURNING {USER_COLUMNS}"
        ))
        .bind(name)
        .bind(role.as_str())
        .bind(hash)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => {
                StoreError::Conflict(format!("a user named {name:?} exists"))
            }
            e => e,
        })?;
        let user = user_of(&row)?;
        if !agent.is_empty() {
            super::agents::apply_change(&mut tx, user.id, agent).await?;
        }
        tx.commit().await?;
        Ok(user)
    }

    /// Every user, by id.
    pub async fn users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY id"))
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(user_of).collect()
    }

    /// One user.
    pub async fn user(&self, id: i64) -> Result<User> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?
            .ok_or(StoreError::NotFound { what: "user", id })?;
        user_of(&row)
    }

    /// Deletes a user and its tokens.
    pub async fn delete_user(&self, id: i64) -> Result<()> {
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&self.writer)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { what: "user", id });
        }
        Ok(())
    }

    /// Issues a new token for a user.
    pub async fn create_token(&self, user_id: i64, label: &str) -> Result<NewToken> {
        self.user(user_id).await?;
        let token = generate_token();
        let info = self.insert_token(user_id, &token, label).await?;
        Ok(NewToken { info, token })
    }

    async fn insert_token(&self, user_id: i64, token: &str, label: &str) -> Result<TokenInfo> {
        let row = sqlx::query(
            "INSERT INTO tokens (user_id, hash, label, created_ms) VALUES ($1, $2, $3, $4) \
             RETURNING id, user_id, label, created_ms, revoked_ms",
        )
        .bind(user_id)
        .bind(hash_token(token))
        .bind(label)
        .bind(now_ms())
        .fetch_one(&self.writer)
        .await?;
        token_of(&row)
    }

    /// A user's tokens, revoked ones included.
    pub async fn tokens(&self, user_id: i64) -> Result<Vec<TokenInfo>> {
        self.user(user_id).await?;
        let rows = sqlx::query(
            "SELECT id, user_id, label, created_ms, revoked_ms FROM tokens WHERE user_id = $1 ORDER BY id",
        )
        .bind(user_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(token_of).collect()
    }

    /// Revokes a token; it stops working at once.
    pub async fn revoke_token(&self, id: i64) -> Result<TokenInfo> {
        let row = sqlx::query(
            "UPDATE tokens SET revoked_ms = COALESCE(revoked_ms, $1) WHERE id = $2 \
             RETURNING id, user_id, label, created_ms, revoked_ms",
        )
        .bind(now_ms())
        .bind(id)
        .fetch_optional(&self.writer)
        .await?
        .ok_or(StoreError::NotFound { what: "token", id })?;
        token_of(&row)
    }

    /// The user a Bearer token belongs to, unless unknown or revoked.
    pub async fn authenticate(&self, token: &str) -> Result<Option<User>> {
        let row = sqlx::query(
            "SELECT u.id, u.name, u.role, u.password_hash, u.created_ms FROM tokens t \
             JOIN users u ON u.id = t.user_id WHERE t.hash = $1 AND t.revoked_ms IS NULL",
        )
        .bind(hash_token(token))
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(user_of).transpose()
    }

    /// Checks a user's password; on success issues a token labelled `login`. Unknown names
    /// and users without a password cost one argon2 verification too, against a dummy hash.
    pub async fn login(&self, name: &str, password: &str) -> Result<Option<NewToken>> {
        let dummy = dummy_hash().await?;
        let row = match normalise_name(name) {
            Ok(name) => {
                sqlx::query("SELECT id, password_hash FROM users WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&self.reader)
                    .await?
            }
            Err(_) => None,
        };
        let user = match &row {
            Some(row) => row
                .try_get::<Option<String>, _>("password_hash")?
                .map(|hash| (row.try_get::<i64, _>("id"), hash)),
            None => None,
        };
        let (id, stored) = match user {
            Some((id, hash)) => (Some(id?), hash),
            None => (None, dummy.to_string()),
        };
        let password = password.to_string();
        let ok = hashing(move || verify_password(&stored, &password)).await?;
        match id {
            Some(id) if ok => self.create_token(id, "login").await.map(Some),
            _ => Ok(None),
        }
    }

    /// Brings user names stored before names were normalised to their normal form; a name
    /// that would then clash with another user's, or has characters no longer allowed, is
    /// left alone and returned (it can no longer log in by password; its tokens still work).
    pub async fn normalise_user_names(&self) -> Result<Vec<String>> {
        let mut left = Vec::new();
        for user in self.users().await? {
            match normalise_name(&user.name) {
                Ok(n) if n == user.name => {}
                Ok(n) => {
                    let renamed = sqlx::query("UPDATE users SET name = $1 WHERE id = $2")
                        .bind(&n)
                        .bind(user.id)
                        .execute(&self.writer)
                        .await;
                    match renamed.map_err(StoreError::from) {
                        Ok(_) => {}
                        Err(StoreError::Conflict(_)) => left.push(user.name),
                        Err(e) => return Err(e),
                    }
                }
                Err(_) => left.push(user.name),
            }
        }
        Ok(left)
    }

    /// On an empty store, creates user `admin` whose token is `env_token` when given, else a
    /// fresh one written to `<state_dir>/admin.token` (mode 0600).
    pub async fn ensure_admin(
        &self,
        env_token: Option<&str>,
        state_dir: &Path,
    ) -> Result<AdminBootstrap> {
        let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.writer)
            .await?;
        if users > 0 {
            return Ok(AdminBootstrap::Existing);
        }
        if env_token.is_some_and(|t| t.len() < 16) {
            return Err(StoreError::invalid(
                "DIALERD_ADMIN_TOKEN",
                "wanted at least 16 characters",
            ));
        }
        let admin = self.create_user("admin", Role::Admin, None).await?;
        match env_token {
            Some(token) => {
                self.insert_token(admin.id, token, "DIALERD_ADMIN_TOKEN")
                    .await?;
                Ok(AdminBootstrap::FromEnv)
            }
            None => {
                let token = generate_token();
                let path = state_dir.join("admin.token");
                write_private(&path, &format!("{token}\n")).map_err(|source| StoreError::File {
                    path: path.clone(),
                    source,
                })?;
                self.insert_token(admin.id, &token, "admin.token").await?;
                Ok(AdminBootstrap::Written(path))
            }
        }
    }
}

/// Writes a file only its owner can read (created 0600, not chmod-ed after the fact).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    async fn store(dir: &Path) -> Store {
        crate::store::test_support::store_in(dir).await
    }

    crate::store::both_backends! {
        async fn first_start_writes_a_private_admin_token_once() {
            let dir = tempfile::tempdir().unwrap();
            let s = store(dir.path()).await;
            let AdminBootstrap::Written(path) = s.ensure_admin(None, dir.path()).await.unwrap() else {
                panic!("no token written");
            };
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let token = std::fs::read_to_string(&path).unwrap();
            let user = s.authenticate(token.trim()).await.unwrap().unwrap();
            assert_eq!((user.name.as_str(), user.role), ("admin", Role::Admin));
            assert_eq!(
                s.ensure_admin(None, dir.path()).await.unwrap(),
                AdminBootstrap::Existing
            );
            assert!(s.authenticate("wrong").await.unwrap().is_none());
        }
    }

    crate::store::both_backends! {
        async fn revoked_tokens_stop_working_and_passwords_log_in() {
            let dir = tempfile::tempdir().unwrap();
            let s = store(dir.path()).await;
            let u = s
                .create_user("ann", Role::Backoffice, Some("correct horse"))
                .await
                .unwrap();
            assert!(s.login("ann", "wrong pass").await.unwrap().is_none());
            let t = s.login("ann", "correct horse").await.unwrap().unwrap();
            assert_eq!(s.authenticate(&t.token).await.unwrap().unwrap().id, u.id);
            s.revoke_token(t.info.id).await.unwrap();
            assert!(s.authenticate(&t.token).await.unwrap().is_none());
            let dup = s.create_user("ann", Role::Agent, None).await.unwrap_err();
            assert!(matches!(dup, StoreError::Conflict(_)), "{dup}");
        }
    }
}
