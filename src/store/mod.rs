//! Durable storage: one set of portable queries on SQLite or PostgreSQL.
//!
//! Civitas talks to both databases through sqlx's `Any` driver with one query
//! text per operation (`$1` placeholders, `BIGINT` Unix seconds, JSON as
//! `TEXT`, booleans as `0`/`1`), so no query branches on the backend. The SQL
//! for each domain lives beside it (`clients::store`, ...); this module owns
//! the pool, the migrations and the error type.
//!
//! Migrations are forward-only, one directory per backend
//! (`migrations/sqlite`, `migrations/postgres`), embedded in the binary and
//! applied at start-up and by `civitas migrate`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor as _};

use crate::config::DatabaseSettings;

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default.
    Sqlite,
    /// Production.
    Postgres,
}

/// A storage failure. The cause is for the log, never for the caller.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or answered with an error. A lost
    /// or refused connection arrives here as `sqlx::Error::Io` (see
    /// [`StoreError::is_unavailable`]).
    #[error("database: {0}")]
    Database(#[source] sqlx::Error),
    /// A migration failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value could not be decoded (a corrupt row).
    #[error("stored value is corrupt: {0}")]
    Corrupt(String),
    /// The database file's directory could not be created.
    #[error("database directory: {0}")]
    Io(#[from] std::io::Error),
}

impl From<sqlx::Error> for StoreError {
    /// Connection-level failures (the server shutting down or restarting, a
    /// connection it terminated, a reset socket) become `sqlx::Error::Io`, so
    /// that every caller treats them as "unavailable, retry" (503) rather
    /// than as an internal error; everything else is kept as it is.
    fn from(e: sqlx::Error) -> Self {
        if connection_lost(&e) && !matches!(e, sqlx::Error::Io(_)) {
            return Self::Database(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                e.to_string(),
            )));
        }
        Self::Database(e)
    }
}

/// Does `e` mean the database could not be reached, or dropped the
/// connection, rather than refused the statement?
fn connection_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            // Class 08: connection exception. 57P01-57P03: the server is
            // shutting down, crashed, or cannot accept connections yet.
            // 53300: too many connections.
            c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

impl StoreError {
    /// Is the database unreachable (retry later, 503) rather than failing?
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Database(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_))
        )
    }

    /// Is this a unique-constraint violation (a conflicting insert)?
    #[must_use]
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, Self::Database(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}

/// The connection pool, shared by every domain store.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    backend: Backend,
    /// SQLite's one writer at a time, taken in process before `BEGIN
    /// IMMEDIATE`: write transactions queue here, woken in turn, instead of
    /// sleeping in SQLite's busy handler (1, 2, 5, 10 … ms) while another
    /// holds the lock. Unused on PostgreSQL.
    write_turn: Arc<Semaphore>,
}

/// How long a write transaction waits for its turn on SQLite.
const WRITE_TURN_TIMEOUT: Duration = Duration::from_secs(5);

/// A write transaction: the connection, and on SQLite the writer's turn,
/// held until it commits or rolls back.
pub struct WriteTx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    _turn: Option<OwnedSemaphorePermit>,
}

impl std::fmt::Debug for WriteTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteTx")
            .field("turn", &self._turn.is_some())
            .finish_non_exhaustive()
    }
}

impl WriteTx {
    /// Commits, then gives the turn to the next writer.
    ///
    /// # Errors
    /// If the commit fails; nothing of the transaction is kept then.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    /// Rolls back, then gives the turn to the next writer.
    ///
    /// # Errors
    /// If the connection fails.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::AnyConnection;

    fn deref(&self) -> &sqlx::AnyConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }
}

static MIGRATIONS_SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static MIGRATIONS_POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

impl Database {
    /// Connects to `url`, creating an SQLite file (and its directory) if needed.
    ///
    /// # Errors
    /// If the database cannot be reached.
    pub async fn connect(url: &str, settings: &DatabaseSettings) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let mut url = url.to_owned();
        if backend == Backend::Sqlite {
            url = prepare_sqlite_url(&url)?;
        }
        let options: AnyConnectOptions = url.parse()?;
        let pool = AnyPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            // A pooled connection the server has since closed (a restart) is
            // found and replaced before it is handed out, not by a request:
            // a connection idle for a second or more is pinged first. One
            // in constant use is not (sqlx already pings every connection
            // when it is returned to the pool), which saves a round trip per
            // query under load; a connection lost meanwhile fails its query
            // with a 503 and is discarded.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= Duration::from_secs(1) {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .idle_timeout(Some(Duration::from_secs(300)))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers proceed during a write; the busy
                        // timeout queues writers instead of failing them.
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; \
                             PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Ok(Self {
            pool,
            backend,
            write_turn: Arc::new(Semaphore::new(1)),
        })
    }

    /// Applies every pending migration for this backend.
    ///
    /// # Errors
    /// If a migration fails; nothing of that migration is kept.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Sqlite => MIGRATIONS_SQLITE.run(&self.pool).await?,
            Backend::Postgres => MIGRATIONS_POSTGRES.run(&self.pool).await?,
        }
        Ok(())
    }

    /// Is the database answering?
    ///
    /// # Errors
    /// If it is not.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Begins a transaction that will write. On SQLite it first waits its
    /// turn among this process's write transactions (see `write_turn`),
    /// then takes the write lock at once (`BEGIN IMMEDIATE`): a deferred
    /// transaction that reads and then writes fails with
    /// `SQLITE_BUSY_SNAPSHOT` (517) when another writer committed meanwhile,
    /// which no timeout can cure. PostgreSQL's `BEGIN` needs nothing more.
    ///
    /// # Errors
    /// If no connection can be had, the turn does not come within 5 s
    /// (`PoolTimedOut`), or the transaction cannot begin.
    pub async fn begin(&self) -> Result<WriteTx, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => {
                let turn = tokio::time::timeout(
                    WRITE_TURN_TIMEOUT,
                    Arc::clone(&self.write_turn).acquire_owned(),
                )
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)?
                .map_err(|_| sqlx::Error::PoolClosed)?;
                Ok(WriteTx {
                    tx: self.pool.begin_with("BEGIN IMMEDIATE").await?,
                    _turn: Some(turn),
                })
            }
            Backend::Postgres => Ok(WriteTx {
                tx: self.pool.begin().await?,
                _turn: None,
            }),
        }
    }

    /// On SQLite, this process's writer's turn (see `write_turn`), for a
    /// hot write outside a transaction: held while the statement runs, it
    /// keeps the statement from sleeping in SQLite's busy handler behind a
    /// write transaction. `None` on PostgreSQL, which needs none.
    ///
    /// # Errors
    /// `PoolTimedOut` if the turn does not come within 5 s.
    pub async fn write_turn(&self) -> Result<Option<OwnedSemaphorePermit>, sqlx::Error> {
        if self.backend == Backend::Postgres {
            return Ok(None);
        }
        tokio::time::timeout(
            WRITE_TURN_TIMEOUT,
            Arc::clone(&self.write_turn).acquire_owned(),
        )
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)?
        .map(Some)
        .map_err(|_| sqlx::Error::PoolClosed)
    }

    /// The pool, for the domain stores.
    #[must_use]
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which backend this is.
    #[must_use]
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every connection (graceful shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Creates the SQLite file's directory and asks for the file to be created.
fn prepare_sqlite_url(url: &str) -> Result<String, StoreError> {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path != ":memory:"
        && let Some(dir) = Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let query = if query.contains("mode=") {
        query.to_owned()
    } else if query.is_empty() {
        "mode=rwc".to_owned()
    } else {
        format!("{query}&mode=rwc")
    };
    Ok(format!("sqlite:{path}?{query}"))
}

/// Reads a `BIGINT` 0/1 column as a boolean.
#[must_use]
pub(crate) fn flag(v: i64) -> bool {
    v != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_connections_are_unavailable_and_failing_statements_are_not() {
        for e in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::Protocol("unexpected end of stream".into()),
            sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
        ] {
            let s = StoreError::from(e);
            assert!(s.is_unavailable(), "{s}");
            assert!(matches!(
                s,
                StoreError::Database(sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut)
            ));
        }
        for e in [
            sqlx::Error::RowNotFound,
            sqlx::Error::ColumnNotFound("x".into()),
        ] {
            assert!(!StoreError::from(e).is_unavailable());
        }
    }

    #[test]
    fn sqlite_urls_ask_for_creation() {
        let dir = std::env::temp_dir().join(format!("civitas-{}", crate::secrets::random_token(6)));
        let file = dir.join("db.sqlite");
        let url = prepare_sqlite_url(&format!("sqlite:{}", file.display())).unwrap();
        assert!(url.ends_with("?mode=rwc"));
        assert!(dir.exists());
        let _ = std::fs::remove_dir_all(dir);
        assert_eq!(
            prepare_sqlite_url("sqlite::memory:").unwrap(),
            "sqlite::memory:?mode=rwc"
        );
    }
}
