//! `SqliteStore::with_secret_seal`: destination keys reach the database file
//! only sealed, come back opened, and a store without the seal refuses to
//! read them; keys written before a seal was set are read and sealed on the
//! next save.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use webhook_guard::sender::{
    AddressPolicy, DeliveryStore, DeliveryStoreError, NewDestination, SecretSeal, Sender,
    SqliteStore,
};
use zeroize::Zeroizing;

/// Stands in for a KMS: XOR with a pad, behind a marker byte so that opening
/// checks the bytes were sealed by it.
struct PadSeal(u8);

impl SecretSeal for PadSeal {
    fn seal(&self, key: &[u8]) -> Result<Vec<u8>, DeliveryStoreError> {
        Ok(std::iter::once(0xA5)
            .chain(key.iter().map(|b| b ^ self.0))
            .collect())
    }
    fn open(&self, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, DeliveryStoreError> {
        match sealed.split_first() {
            Some((0xA5, rest)) => Ok(Zeroizing::new(rest.iter().map(|b| b ^ self.0).collect())),
            _ => Err(DeliveryStoreError::new("not sealed by this seal")),
        }
    }
}

const KEY: &[u8] = b"destination-key-that-must-stay-sealed";

/// The database file and its WAL, as bytes.
fn file_bytes(db: &Path) -> Vec<u8> {
    let mut all = std::fs::read(db).unwrap_or_default();
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    all.extend(std::fs::read(wal).unwrap_or_default());
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn sender(store: SqliteStore) -> Sender<SqliteStore> {
    Sender::builder(store)
        .address_policy(AddressPolicy::new().allow("127.0.0.1").unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn sealed_keys_never_reach_the_file_in_the_clear() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let b64 = base64::engine::general_purpose::STANDARD;

    // Written before a seal was set: the file holds the key's base64.
    {
        let plain = sender(SqliteStore::open(&db).unwrap());
        plain
            .add_destination(NewDestination::new("http://127.0.0.1:9/", KEY).id("dst_old"))
            .await
            .unwrap();
    }
    assert!(contains(&file_bytes(&db), b64.encode(KEY).as_bytes()));

    let sealed = SqliteStore::open(&db)
        .unwrap()
        .with_secret_seal(PadSeal(0x3c));
    // The old row is read as it is.
    let old = sealed.destination("dst_old").await.unwrap().unwrap();
    assert_eq!(old.secrets[0].expose_bytes(), KEY);
    let s = sender(sealed.clone());
    s.add_destination(NewDestination::new("http://127.0.0.1:9/", KEY).id("dst_new"))
        .await
        .unwrap();
    // Saving the old destination again (a rotation) seals it too.
    s.rotate_secret("dst_old", KEY, Duration::from_secs(60))
        .await
        .unwrap();
    let reread = sealed.destinations().await.unwrap();
    assert_eq!(reread.len(), 2);
    for d in &reread {
        assert!(
            d.secrets.iter().all(|k| k.expose_bytes() == KEY),
            "{}",
            d.id
        );
    }
    drop((s, sealed));
    // Let the store threads finish and checkpoint, then look at the bytes:
    // only the VACUUMed file tells what the live rows hold.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let check = rusqlite::Connection::open(&db).unwrap();
    let rows: Vec<String> = check
        .prepare("SELECT secrets FROM destinations")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 2);
    for row in rows {
        assert!(row.contains("\"sealed\":true"), "{row}");
        assert!(!row.contains(&b64.encode(KEY)), "{row}");
    }

    // Without the seal, a sealed key is refused rather than misread.
    let unsealed = SqliteStore::open(&db).unwrap();
    let err = unsealed
        .destination("dst_new")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sealed") && err.contains("with_secret_seal"),
        "{err}"
    );
    // With another seal, opening fails.
    let wrong = SqliteStore::open(&db)
        .unwrap()
        .with_secret_seal(PadSeal(0x11));
    let d = wrong.destination("dst_new").await.unwrap().unwrap();
    assert_ne!(d.secrets[0].expose_bytes(), KEY);
}
