//! The accounts the registrar accepts: `[[agents]]` from the configuration (plain passwords,
//! challenged with `sip.digest_algorithms`) and agents' SIP logins from the store (only HA1s,
//! challenged with the one algorithm chosen per account). The store's accounts reach the
//! registrar as [`AccountUpdate`]s through an [`AccountSender`], which the endpoint drains
//! before it reads SIP messages: a change the API has acknowledged applies to the next request.

use crate::sip::auth::{Algorithm, Secret};
use std::collections::HashMap;
use tokio::sync::mpsc;

/// The digest algorithm a store account is challenged with; one per account, because phones
/// such as baresip 1.0 give up when a challenge names an algorithm they lack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccountDigest {
    /// `MD5`: what every SIP phone speaks (the default).
    #[default]
    Md5,
    /// `SHA-256` (RFC 8760) only: MD5 answers are refused.
    Sha256,
}

impl AccountDigest {
    /// The name in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountDigest::Md5 => "md5",
            AccountDigest::Sha256 => "sha-256",
        }
    }

    /// The digest named `name` (`md5`, `sha-256`), case-insensitively.
    pub fn parse(name: &str) -> Option<AccountDigest> {
        [AccountDigest::Md5, AccountDigest::Sha256]
            .into_iter()
            .find(|d| d.as_str().eq_ignore_ascii_case(name.trim()))
    }

    /// The wire algorithm.
    pub fn algorithm(self) -> Algorithm {
        match self {
            AccountDigest::Md5 => Algorithm::Md5,
            AccountDigest::Sha256 => Algorithm::Sha256,
        }
    }
}

/// An agent's SIP login as the store keeps it: HA1s, never the password.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreAccount {
    /// The digest user name.
    pub username: String,
    /// The realm the HA1s were computed with.
    pub realm: String,
    /// `MD5(username:realm:password)`, hex.
    pub ha1_md5: String,
    /// `SHA-256(username:realm:password)`, hex.
    pub ha1_sha256: String,
    /// The algorithm the account is challenged with and must answer with.
    pub digest: AccountDigest,
}

impl std::fmt::Debug for StoreAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The HA1s stand for the password: never printed.
        f.debug_struct("StoreAccount")
            .field("username", &self.username)
            .field("realm", &self.realm)
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

/// A change to the store's accounts, keyed by the owning user's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountUpdate {
    /// User `user_id` now has this login (`None`: none, or the user is gone).
    Set {
        /// The owning user.
        user_id: i64,
        /// The login, if any.
        account: Option<StoreAccount>,
    },
}

/// Sends account changes to the running endpoint. Clones share one lock so that read-then-send
/// sequences of concurrent API requests reach the registrar in the order they read the store.
#[derive(Clone)]
pub struct AccountSender {
    tx: mpsc::UnboundedSender<AccountUpdate>,
    order: std::sync::Arc<tokio::sync::Mutex<()>>,
    realm: String,
    reserved: std::sync::Arc<[String]>,
}

impl AccountSender {
    /// A sender and the receiver the endpoint drains; `realm` is the registrar's and
    /// `reserved` the `[[agents]]` user names (no store account may take them).
    pub fn new(
        realm: impl Into<String>,
        reserved: Vec<String>,
    ) -> (Self, mpsc::UnboundedReceiver<AccountUpdate>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let sender = Self {
            tx,
            order: Default::default(),
            realm: realm.into(),
            reserved: reserved.into(),
        };
        (sender, rx)
    }

    /// The realm store accounts must be hashed with.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// True when `username` belongs to an `[[agents]]` account of the configuration.
    pub fn is_reserved(&self, username: &str) -> bool {
        self.reserved.iter().any(|r| r == username)
    }

    /// Holds the order lock while the caller reads the store and sends what it read.
    pub async fn lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.order.lock().await
    }

    /// Hands `update` to the endpoint (dropped when the endpoint has stopped).
    pub fn send(&self, update: AccountUpdate) {
        let _ = self.tx.send(update);
    }
}

/// One account the registrar accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Account {
    /// Offered in challenges, preferred first.
    pub(super) algorithms: Vec<Algorithm>,
    /// What answers are checked against.
    pub(super) secret: Secret,
    /// The store user owning it; `None` for `[[agents]]`.
    pub(super) user_id: Option<i64>,
}

/// Every account by user name, and the store's by user id.
#[derive(Debug, Default)]
pub(super) struct Accounts {
    by_name: HashMap<String, Account>,
    store_names: HashMap<i64, String>,
}

/// What applying an update changed, for the registrar's bindings.
pub(super) enum Changed {
    /// Nothing that matters to bindings.
    Nothing,
    /// These user names lost their account or their secret: their bindings go.
    Revoked(Vec<String>),
}

impl Accounts {
    /// `[[agents]]` accounts with plain passwords, challenged with `algorithms`.
    pub(super) fn from_config(
        passwords: HashMap<String, String>,
        algorithms: &[Algorithm],
    ) -> Self {
        let by_name = passwords
            .into_iter()
            .map(|(name, password)| {
                let account = Account {
                    algorithms: algorithms.to_vec(),
                    secret: Secret::Password(password),
                    user_id: None,
                };
                (name, account)
            })
            .collect();
        Self {
            by_name,
            store_names: HashMap::new(),
        }
    }

    /// The account named `name`.
    pub(super) fn get(&self, name: &str) -> Option<&Account> {
        self.by_name.get(name)
    }

    /// True when `name` is an account.
    pub(super) fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// Applies one update from the store; `realm` is the registrar's.
    pub(super) fn apply(&mut self, update: AccountUpdate, realm: &str) -> Changed {
        let AccountUpdate::Set { user_id, account } = update;
        let account = account.filter(|a| {
            let usable = a.realm == realm;
            if !usable {
                tracing::warn!(
                    user = %a.username,
                    hashed_for = %a.realm,
                    realm,
                    "SIP login hashed for another realm: set its sip_password again"
                );
            }
            usable
        });
        let mut revoked = Vec::new();
        let new = account.map(|a| {
            let ha1 = match a.digest {
                AccountDigest::Md5 => a.ha1_md5,
                AccountDigest::Sha256 => a.ha1_sha256,
            };
            let algorithm = a.digest.algorithm();
            let account = Account {
                algorithms: vec![algorithm],
                secret: Secret::Ha1s(vec![(algorithm, ha1)]),
                user_id: Some(user_id),
            };
            (a.username, account)
        });
        if let Some(old_name) = self.store_names.remove(&user_id) {
            let kept = new
                .as_ref()
                .is_some_and(|(name, acc)| *name == old_name && self.get(name) == Some(acc));
            if kept {
                self.store_names.insert(user_id, old_name);
                return Changed::Nothing;
            }
            self.by_name.remove(&old_name);
            revoked.push(old_name);
        }
        if let Some((name, account)) = new {
            match self.by_name.get(&name) {
                Some(other) if other.user_id != Some(user_id) => {
                    // The API refuses such names; a config reloaded under it wins.
                    tracing::warn!(user = %name, "SIP login name taken by another account; ignored");
                }
                _ => {
                    self.store_names.insert(user_id, name.clone());
                    self.by_name.insert(name, account);
                }
            }
        }
        if revoked.is_empty() {
            Changed::Nothing
        } else {
            Changed::Revoked(revoked)
        }
    }
}
