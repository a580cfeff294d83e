//! The receiving side of the console demo, built with `--features inbox`:
//! the demo's `/ok` endpoint verifies each delivery and stores it in an
//! inbox, whose handler refuses `kpi.alert` events, so that the console's
//! inbox view has dead letters to replay.

use std::convert::Infallible;
use std::time::Duration;

use axum::routing::MethodRouter;
use webhook_guard::inbox::{Inbox, InboxEvent, InboxWorkers, RetryPolicy, SqliteInboxStore};
use webhook_guard::{SecretSet, VerifyLayer};

/// The demo inbox, its workers, and the directory of its SQLite file.
pub(crate) struct DemoInbox {
    pub(crate) inbox: Inbox<SqliteInboxStore>,
    pub(crate) workers: InboxWorkers,
    _dir: tempfile::TempDir,
}

impl DemoInbox {
    /// An inbox in a temporary directory, retrying once after 2 s; its
    /// workers are started.
    pub(crate) async fn start() -> Result<Self, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = SqliteInboxStore::open(dir.path().join("console-demo-inbox.db"))?;
        let inbox = Inbox::builder(store)
            .retry(RetryPolicy::new([Duration::from_secs(2)]))
            .build()
            .await?;
        let workers = inbox.start(|e: InboxEvent<serde_json::Value>| async move {
            if e.event["event"] == "kpi.alert" {
                return Err("the alerting system is down (a demo failure)");
            }
            Ok(())
        });
        Ok(Self {
            inbox,
            workers,
            _dir: dir,
        })
    }

    /// `route` behind `VerifyLayer` (the demo destinations' `secret`) and
    /// the inbox, which answers in its place.
    pub(crate) fn receive<S: Clone + Send + Sync + 'static>(
        &self,
        route: MethodRouter<S>,
        secret: &str,
    ) -> Result<MethodRouter<S>, Box<dyn std::error::Error>> {
        Ok(route
            .layer::<_, Infallible>(self.inbox.layer())
            .layer::<_, Infallible>(VerifyLayer::new(SecretSet::single(secret)?)))
    }
}
