//! The `LISTEN` connection that wakes an idle worker: one connection of its
//! own (a pooled one cannot hand notifications over), kept open by a task
//! that reconnects after a loss and wakes the worker then too, so that what
//! was stored meanwhile is claimed at once. Used by the sender's `PgStore`
//! and the inbox's `PgInboxStore`, each on its own channel.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{AsyncMessage, Client, Socket};

use crate::durable::backoff::OutageBackoff;

/// How long the listener waits before connecting again after a loss; the
/// wait doubles (up to 30 s) while connecting keeps failing.
const RECONNECT: Duration = Duration::from_secs(1);

/// A TLS connector the `LISTEN` connection of `PgStore::with_listener`
/// (sender) and `PgInboxStore::with_listener` (inbox) can connect through:
/// a [`MakeTlsConnect`] that can be cloned for each reconnection and moved,
/// with its connections, to the tasks that keep them.
///
/// It only names the bounds those constructors need: every connector that
/// meets them implements it, such as [`NoTls`](tokio_postgres::NoTls) and
/// the connectors of `postgres-native-tls` and `tokio-postgres-rustls`.
pub trait ListenerTls:
    MakeTlsConnect<
        Socket,
        Stream: Send + Sync,
        TlsConnect: Send + Sync + TlsConnect<Socket, Future: Send>,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> ListenerTls for T where
    T: MakeTlsConnect<
            Socket,
            Stream: Send + Sync,
            TlsConnect: Send + Sync + TlsConnect<Socket, Future: Send>,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

/// A running `LISTEN`; stops (and closes its connection) when dropped.
pub(crate) struct Listener {
    /// Holds one permit per burst of notifications until a worker waits.
    pub(crate) wake: Arc<Notify>,
    task: JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Listener {
    /// Waits up to `max` for a notification (one that came while nobody
    /// waited counts too).
    pub(crate) async fn wait(&self, max: Duration) {
        let _ = tokio::time::timeout(max, self.wake.notified()).await;
    }
}

/// Connects, `LISTEN`s on `channel`, and returns once the server has
/// confirmed it: a notification committed after this returns wakes the
/// worker.
pub(crate) async fn listen(
    config: tokio_postgres::Config,
    tls: impl ListenerTls,
    channel: &'static str,
) -> Result<Listener, tokio_postgres::Error> {
    let wake = Arc::new(Notify::new());
    let first = subscribe(&config, tls.clone(), channel, &wake).await?;
    let task = tokio::spawn(keep_listening(
        config,
        tls,
        channel,
        first,
        Arc::clone(&wake),
    ));
    Ok(Listener { wake, task })
}

/// A listening connection: the client (dropping it closes the connection)
/// and the task reading the connection's messages.
struct Subscription {
    _client: Client,
    reader: JoinHandle<()>,
}

async fn subscribe(
    config: &tokio_postgres::Config,
    tls: impl ListenerTls,
    channel: &str,
    wake: &Arc<Notify>,
) -> Result<Subscription, tokio_postgres::Error> {
    let (client, mut connection) = config.connect(tls).await?;
    let wake = Arc::clone(wake);
    let reader = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => wake.notify_one(),
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "the PostgreSQL LISTEN connection failed");
                    return;
                }
                None => return,
            }
        }
    });
    client.batch_execute(&format!("LISTEN {channel}")).await?;
    Ok(Subscription {
        _client: client,
        reader,
    })
}

/// Waits for the connection to end, then connects again (after
/// [`RECONNECT`], backing off while the server stays down) and wakes the
/// worker, which claims what it missed.
async fn keep_listening(
    config: tokio_postgres::Config,
    tls: impl ListenerTls,
    channel: &'static str,
    mut current: Subscription,
    wake: Arc<Notify>,
) {
    let mut outage = OutageBackoff::starting_at("LISTEN on PostgreSQL", RECONNECT);
    loop {
        let _ = (&mut current.reader).await;
        wake.notify_one();
        let mut wait = RECONNECT;
        current = loop {
            tokio::time::sleep(wait).await;
            match subscribe(&config, tls.clone(), channel, &wake).await {
                Ok(next) => break next,
                Err(e) => wait = outage.failed(&e),
            }
        };
        outage.succeeded();
        wake.notify_one();
    }
}
