//! Hearing other replicas' changes: `LISTEN` on the channel every ingest notifies at
//! commit, on a connection and thread of its own, so a replica re-reads the scope
//! changes as soon as another commits instead of at its next poll. The daemon's poll
//! of the generation stays as the backstop for a notification lost with a connection.

use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use tokio_util::sync::CancellationToken;

use super::ingest::CHANGES_CHANNEL;
use super::{tls, Ctx};
use crate::store::StoreError;

/// How often the listener looks whether it should stop, and waits before connecting
/// again after an error.
const STEP: Duration = Duration::from_secs(1);

/// Calls `changed` whenever a replica commits a change to the store at `url`, from a
/// thread of its own, until `stop` is cancelled. A lost connection is logged once per
/// spell and opened again.
pub fn listen_for_changes(
    url: &str,
    changed: impl Fn() + Send + 'static,
    stop: CancellationToken,
) -> Result<std::thread::JoinHandle<()>, StoreError> {
    let config: postgres::Config = url.parse().ctx("reading the store URL")?;
    std::thread::Builder::new()
        .name("lookout-listen".to_owned())
        .spawn(move || {
            let mut failing = false;
            while !stop.is_cancelled() {
                match listen(&config, &changed, &stop) {
                    Ok(()) => return,
                    Err(e) => {
                        if !failing {
                            tracing::warn!(error = %e,
                                "store: not hearing other replicas' changes; the poll still \
                                 finds them; connecting again");
                        }
                        failing = true;
                        std::thread::sleep(STEP);
                    }
                }
            }
        })
        .map_err(StoreError::Thread)
}

/// One connection's worth of listening; `Ok` once `stop` is cancelled.
fn listen(
    config: &postgres::Config,
    changed: &impl Fn(),
    stop: &CancellationToken,
) -> Result<(), StoreError> {
    let mut client = config.connect(tls()?).ctx("connecting to listen")?;
    client
        .batch_execute(&format!("LISTEN {CHANGES_CHANNEL}"))
        .ctx("listening for changes")?;
    while !stop.is_cancelled() {
        // A closed connection ends the wait with an error.
        let mut notifications = client.notifications();
        let mut heard = notifications.timeout_iter(STEP);
        while heard.next().ctx("hearing a change")?.is_some() {
            changed();
        }
    }
    Ok(())
}
