//! Leases: named, exclusive, held by one holder at a time across every node sharing the
//! database — the fleet's "one routing engine per brand" (issue 14). On PostgreSQL a lease is a
//! session advisory lock (`pg_try_advisory_lock(hashtextextended(name, 0))`) on a connection
//! the holder keeps for itself: PostgreSQL itself is the referee, and a node that dies drops
//! its connection and with it every lease it held, with nothing to expire or clean up. On
//! SQLite there is one serving node per file (the binary enforces it), so a holder's leases are
//! only kept from the node's other holders.
//!
//! A holder that loses its connection has lost its leases (another node may hold them a
//! moment later): [`Leases::check`] says so, and the caller must stop what the leases
//! guarded before it takes any again.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use sqlx::{AnyConnection, ConnectOptions, Connection, Row};

use crate::{Dialect, Store, StoreError};

/// One holder's leases. Dropping it gives them all back (on PostgreSQL by closing its
/// connection).
#[derive(Debug)]
pub struct Leases {
    kind: Kind,
    /// Names held by this holder.
    held: Mutex<HashSet<String>>,
}

#[derive(Debug)]
enum Kind {
    /// The session holding the advisory locks.
    Postgres(tokio::sync::Mutex<AnyConnection>),
    /// Names held by any holder of this store on this node.
    Local(Arc<Mutex<HashSet<String>>>),
}

impl Store {
    /// A new lease holder: on PostgreSQL with a connection of its own.
    pub async fn lease_holder(&self) -> Result<Leases, StoreError> {
        let kind = match self.dialect {
            Dialect::Postgres => Kind::Postgres(tokio::sync::Mutex::new(self.connect_options.connect().await?)),
            Dialect::Sqlite => Kind::Local(Arc::clone(&self.local_leases)),
        };
        Ok(Leases { kind, held: Mutex::new(HashSet::new()) })
    }
}

impl Leases {
    /// Takes the lease `name` if no other holder has it; `true` when this holder has it now
    /// (taking one already held is `true` again). An error says nothing of the lease: treat
    /// it as not taken.
    pub async fn try_take(&self, name: &str) -> Result<bool, StoreError> {
        if self.holds(name) {
            return Ok(true);
        }
        let taken = match &self.kind {
            Kind::Postgres(conn) => {
                let mut conn = conn.lock().await;
                let row = sqlx::query("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
                    .bind(name)
                    .fetch_one(&mut *conn)
                    .await?;
                row.try_get::<bool, _>(0)?
            }
            Kind::Local(names) => names.lock().unwrap_or_else(|poison| poison.into_inner()).insert(name.to_owned()),
        };
        if taken {
            self.held.lock().unwrap_or_else(|poison| poison.into_inner()).insert(name.to_owned());
        }
        Ok(taken)
    }

    /// Gives the lease `name` back, if this holder has it.
    pub async fn give_back(&self, name: &str) -> Result<(), StoreError> {
        if !self.held.lock().unwrap_or_else(|poison| poison.into_inner()).remove(name) {
            return Ok(());
        }
        match &self.kind {
            Kind::Postgres(conn) => {
                let mut conn = conn.lock().await;
                sqlx::query("SELECT pg_advisory_unlock(hashtextextended($1, 0))")
                    .bind(name)
                    .execute(&mut *conn)
                    .await?;
            }
            Kind::Local(names) => {
                names.lock().unwrap_or_else(|poison| poison.into_inner()).remove(name);
            }
        }
        Ok(())
    }

    /// Whether this holder has the lease `name` (as far as it knows: see [`Leases::check`]).
    pub fn holds(&self, name: &str) -> bool {
        self.held.lock().unwrap_or_else(|poison| poison.into_inner()).contains(name)
    }

    /// Checks that the holder still has its leases. On PostgreSQL a lost connection loses
    /// them all: the error lists them and the holder forgets them; [`Leases::reconnect`] then
    /// gives it a fresh connection before it takes any again.
    pub async fn check(&self) -> Result<(), LeasesLost> {
        let Kind::Postgres(conn) = &self.kind else { return Ok(()) };
        let mut conn = conn.lock().await;
        match conn.ping().await {
            Ok(()) => Ok(()),
            Err(error) => {
                let names: Vec<String> =
                    self.held.lock().unwrap_or_else(|poison| poison.into_inner()).drain().collect();
                Err(LeasesLost { names, reason: error.to_string() })
            }
        }
    }

    /// After [`Leases::check`] failed: a fresh connection for the holder, holding nothing.
    pub async fn reconnect(&self, store: &Store) -> Result<(), StoreError> {
        if let Kind::Postgres(conn) = &self.kind {
            let fresh = store.connect_options.connect().await?;
            let old = std::mem::replace(&mut *conn.lock().await, fresh);
            // Closing the old session also ends any lock it might still have.
            let _ = old.close().await;
            self.held.lock().unwrap_or_else(|poison| poison.into_inner()).clear();
        }
        Ok(())
    }
}

impl Drop for Leases {
    fn drop(&mut self) {
        // PostgreSQL: dropping the connection closes the session, which ends its locks.
        if let Kind::Local(names) = &self.kind {
            let held = self.held.lock().unwrap_or_else(|poison| poison.into_inner());
            let mut names = names.lock().unwrap_or_else(|poison| poison.into_inner());
            for name in held.iter() {
                names.remove(name);
            }
        }
    }
}

/// A holder lost its connection, and with it these leases.
#[derive(Debug, thiserror::Error)]
#[error("lost the leases {names:?}: {reason}")]
pub struct LeasesLost {
    pub names: Vec<String>,
    pub reason: String,
}
